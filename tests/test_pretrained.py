"""SmolLM2-135M from GGUF: metadata -> config, weights and Q/K un-permutation, tokenizer, other layer
patterns on the same weights, bad files and bad arguments.

Tests marked `oracle` need the real file (downloaded once, ~98 MB; skipped when offline) and most compare
with transformers loading the same GGUF. Each model is loaded once per module.
"""

import os

import numpy as np
import pytest
import torch
from gguf import GGUFWriter
from torch import nn

from minihybrid.config import LayerSpec
from minihybrid.generate import generate
from minihybrid.layers import MIXERS
from minihybrid.pretrained import (
    GGUFTokenizer,
    config_from_gguf,
    load_gguf_model,
    load_smollm2,
    metadata,
    open_gguf,
    unpermute_qk,
)

PROMPTS = [
    "The capital of France is",
    "<|im_start|>user\nWrite a haiku about the sea.<|im_end|>\n<|im_start|>assistant\n",
    "def fibonacci(n):\n    ",
]
TEXTS = [  # texts on which the original SmolLM2 tokenizer and transformers' GGUF rebuild of it agree
    "Hello, world! The quick brown fox jumps over the lazy dog.",
    "It's 3.14159 and 2024-11-22; 1,000,000 people paid $42.50 (or 12%).",
    "def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n",
    "for (int i = 0; i < 10; ++i) { x[i] = i * 2; }\t// tabs\tand\ttabs",
    "Ünïcödé: naïve café, 日本語のテキスト, Привет мир, emoji 🤗🚀, math ∑∫√ x²",
    "   leading spaces, trailing spaces   \n\n\n  indented\n\t\tline  \r\n",
    "multiple     spaces    between words and\n\n\nnewlines",
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
    "<|endoftext|>text<repo_name>x<file_sep>y <|im_end|>",
    "I'm sure you'll see they've done it; we'd've. URL: https://example.com/p?q=1&r=two#frag",
    "",
]


# --- without the download: a tiny synthetic llama GGUF and broken files ----------------------------------

def llama_cpp_permute(w: np.ndarray, n_heads: int) -> np.ndarray:
    """What the HF->GGUF converter does to q/k rows: per head, rotate-half order -> interleaved pairs."""
    return w.reshape(n_heads, 2, w.shape[0] // n_heads // 2, w.shape[1]).swapaxes(1, 2).reshape(w.shape)


def byte_alphabet() -> list[str]:
    """GPT-2's spelling of the 256 bytes: printable Latin-1 as itself, the rest shifted to U+0100.."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    shifted = iter(range(256, 512))
    return [chr(b) if b in keep else chr(next(shifted)) for b in range(256)]


TINY_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", *byte_alphabet(),
               "Ġt", "he", "Ġthe", "ĠĠ", "ĠĠĠ"]
TINY_MERGES = ["Ġ t", "h e", "Ġt he", "Ġ Ġ", "ĠĠ Ġ"]


def write_tiny_llama(path, arch="llama", n_layers=2, d=32, heads=4, kv_heads=2, d_ff=48, seed=0, extra=None):
    """A float32 llama GGUF with an untied output and a tiny byte-level BPE vocabulary.

    Returns the weights in HF (rotate-half) layout.
    """
    vocab = len(TINY_TOKENS)
    rng = np.random.default_rng(seed)
    hf = {"token_embd.weight": rng.standard_normal((vocab, d)),
          "output.weight": rng.standard_normal((vocab, d)), "output_norm.weight": rng.standard_normal(d)}
    head_dim = d // heads
    shapes = {"attn_norm": (d,), "attn_q": (heads * head_dim, d), "attn_k": (kv_heads * head_dim, d),
              "attn_v": (kv_heads * head_dim, d), "attn_output": (d, heads * head_dim), "ffn_norm": (d,),
              "ffn_gate": (d_ff, d), "ffn_up": (d_ff, d), "ffn_down": (d, d_ff)}
    for i in range(n_layers):
        hf.update({f"blk.{i}.{n}.weight": rng.standard_normal(s) for n, s in shapes.items()})
    hf = {k: v.astype(np.float32) for k, v in {**hf, **(extra or {})}.items()}
    writer = GGUFWriter(path, arch)
    writer.add_block_count(n_layers)
    writer.add_context_length(128)
    writer.add_embedding_length(d)
    writer.add_feed_forward_length(d_ff)
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_rope_freq_base(5000.0)
    writer.add_layer_norm_rms_eps(1e-6)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("smollm")
    writer.add_token_list(TINY_TOKENS)
    writer.add_token_types([3, 3, 3] + [1] * (vocab - 3))
    writer.add_token_merges(TINY_MERGES)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    for name, w in hf.items():
        if ".attn_q." in name or ".attn_k." in name:
            w = llama_cpp_permute(w, heads if ".attn_q." in name else kv_heads)
        writer.add_tensor(name, w)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return hf


def test_unpermute_inverts_the_converter_permutation():
    w = np.arange(3 * 8 * 5, dtype=np.float32).reshape(3 * 8, 5)  # 3 heads of dim 8, 5 input features
    assert np.array_equal(unpermute_qk(llama_cpp_permute(w, 3), 3), w)
    # row 2j of a GGUF head is HF row j, row 2j+1 is HF row j + D/2
    gguf_head0 = llama_cpp_permute(w, 3)[:8]
    assert np.array_equal(gguf_head0[0::2], w[:4]) and np.array_equal(gguf_head0[1::2], w[4:8])


def test_tiny_gguf_loads_into_hf_layout(tmp_path):
    path = tmp_path / "tiny.gguf"
    hf = write_tiny_llama(path)
    model = load_gguf_model(path)
    c = model.config
    dims = (c.n_layers, c.d_model, c.n_heads, c.n_kv_heads, c.head_dim, c.d_ff, c.vocab_size)
    assert dims == (2, 32, 4, 2, 8, 48, len(TINY_TOKENS))
    assert (c.rope_base, c.max_seq_len, c.tie_embeddings) == (5000.0, 128, False)
    assert c.norm_eps == pytest.approx(1e-6)
    blk = model.blocks[1]
    pairs = [(blk.mixer.q_proj, "attn_q"), (blk.mixer.k_proj, "attn_k"), (blk.mixer.o_proj, "attn_output"),
             (blk.ffn.down, "ffn_down")]
    for ours, name in pairs:
        assert torch.equal(ours.weight, torch.from_numpy(hf[f"blk.1.{name}.weight"]))
    assert torch.equal(model.head.weight, torch.from_numpy(hf["output.weight"]))
    half = load_gguf_model(path, dtype=torch.bfloat16, max_seq_len=64)
    assert half.embed.weight.dtype == torch.bfloat16 and half.config.max_seq_len == 64
    ids = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        logits = half(ids)
    assert logits.dtype == torch.bfloat16 and torch.isfinite(logits).all()


def test_tiny_gguf_tokenizer(tmp_path):
    write_tiny_llama(tmp_path / "tiny.gguf")
    tok = GGUFTokenizer.from_gguf(tmp_path / "tiny.gguf")
    assert (tok.vocab_size, tok.bos_id, tok.eos_id, tok.pad_id) == (len(TINY_TOKENS), 1, 2, None)
    text = "<|im_start|>the the   12é<|im_end|>"
    ids = tok.encode(text)
    pieces = ["<|im_start|>", "t", "he", "Ġthe", "ĠĠĠ", "1", "2", "Ã", "©", "<|im_end|>"]
    assert [tok.token(i) for i in ids] == pieces  # digits split first: the 3-space run stays whole
    assert tok.decode(ids) == text and tok.decode(ids, skip_special_tokens=True) == "the the   12é"


def test_wrong_architecture_and_random_bytes_raise(tmp_path):
    write_tiny_llama(tmp_path / "gpt2.gguf", arch="gpt2")
    with pytest.raises(ValueError, match=r"gpt2\.gguf.*architecture 'gpt2'"):
        load_gguf_model(tmp_path / "gpt2.gguf")
    write_tiny_llama(tmp_path / "llama3.gguf", extra={"rope_freqs.weight": np.ones(4)})
    with pytest.raises(ValueError, match=r"does not understand: \['rope_freqs.weight'\]"):
        load_gguf_model(tmp_path / "llama3.gguf")
    (tmp_path / "noise.gguf").write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(ValueError, match=r"noise\.gguf could not be read as a GGUF file"):
        load_gguf_model(tmp_path / "noise.gguf")
    with pytest.raises(FileNotFoundError):
        load_gguf_model(tmp_path / "missing.gguf")


def test_metadata_lookup(tmp_path):
    write_tiny_llama(tmp_path / "tiny.gguf")
    reader = open_gguf(tmp_path / "tiny.gguf")
    assert metadata(reader, "llama.block_count") == 2 and metadata(reader, "tokenizer.ggml.pre") == "smollm"
    assert metadata(reader, "llama.no_such_key", None) is None
    with pytest.raises(ValueError, match=r"tiny\.gguf lacks the metadata key 'llama.no_such_key'"):
        metadata(reader, "llama.no_such_key")


def test_pattern_loads_the_same_weights_into_other_mixers(tmp_path):
    path = tmp_path / "tiny.gguf"
    write_tiny_llama(path)
    window = 4
    full = load_gguf_model(path)
    windowed = load_gguf_model(path, pattern=[LayerSpec("S", {"window": window})] * 2)
    assert windowed.config.pattern_string == "SS" and windowed.blocks[0].mixer.window == window
    assert torch.equal(windowed.blocks[1].mixer.q_proj.weight, full.blocks[1].mixer.q_proj.weight)
    ids = torch.arange(3, 15)[None]  # (1, 12)
    with torch.no_grad():
        a, s = full(ids), windowed(ids)
    assert torch.allclose(a[:, :window], s[:, :window], atol=1e-5)  # no token is outside the window yet
    assert not torch.allclose(a[:, window:], s[:, window:], atol=1e-3)
    assert load_gguf_model(path, pattern="1:1").config.pattern_string == "SA"  # a ratio fills the file's 2


class _NotAttention(nn.Module):  # a stand-in for a mixer family without attention weights
    def __init__(self, config, layer_idx: int):
        super().__init__()
        self.q_proj = nn.Linear(config.d_model, config.d_model, bias=False)
        self.in_proj = nn.Linear(config.d_model, config.d_model, bias=False)


def test_pattern_of_mixers_without_the_files_weights_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "tiny.gguf"
    write_tiny_llama(path)
    monkeypatch.setitem(MIXERS, "Z", _NotAttention)
    message = (r"block 1: mixer 'Z' does not hold the attention parameters of .*tiny\.gguf: the mixer lacks "
               r"\['k_proj.weight', 'o_proj.weight', 'v_proj.weight'\], the file lacks \['in_proj.weight'\]")
    with pytest.raises(ValueError, match=message):
        load_gguf_model(path, pattern="AZ")


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"pattern": "SSS"}, ValueError, r"pattern 'SSS' has 3 blocks but .*tiny\.gguf has 2"),
        ({"pattern": [LayerSpec("S")]}, ValueError, r"has 1 blocks but .*has 2"),
        ({"pattern": "AQ"}, ValueError, r"unknown mixer letter 'Q'"),
        ({"pattern": "1:3"}, ValueError, r"ratio 1:3 cannot fill n_layers=2"),
        ({"dtype": torch.int64}, ValueError, r"dtype must be a floating-point dtype"),
        ({"dtype": "float16"}, TypeError, r"dtype must be a torch.dtype"),
        ({"max_seq_len": 0}, ValueError, r"max_seq_len must be an int >= 1, got 0"),
    ],
)
def test_bad_load_arguments(tmp_path, kwargs, error, match):
    write_tiny_llama(tmp_path / "tiny.gguf")
    with pytest.raises(error, match=match):
        load_gguf_model(tmp_path / "tiny.gguf", **kwargs)


def test_bad_paths(tmp_path):
    write_tiny_llama(tmp_path / "tiny.gguf")
    data = (tmp_path / "tiny.gguf").read_bytes()
    (tmp_path / "cut.gguf").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"cut\.gguf (is truncated|could not be read)"):
        load_gguf_model(tmp_path / "cut.gguf")
    with pytest.raises(ValueError, match=r"cut\.gguf (is truncated|could not be read)"):
        GGUFTokenizer.from_gguf(tmp_path / "cut.gguf")
    for missing in (tmp_path / "missing.gguf", tmp_path):  # absent, or a folder
        with pytest.raises(FileNotFoundError, match="no GGUF file at"):
            load_smollm2(missing)
    with pytest.raises(TypeError, match="path must be a str or pathlib.Path"):
        open_gguf(42)


# --- the real SmolLM2 file --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def gguf_path():
    from minihybrid.data.fetch import DownloadError, smollm2_gguf_path

    try:
        return smollm2_gguf_path()
    except DownloadError as e:
        if os.environ.get("MINIHYBRID_REQUIRE_DOWNLOADS") == "1":  # set by the test run: never skip silently
            raise
        pytest.skip(f"SmolLM2 GGUF not available: {e}")


@pytest.fixture(scope="module")
def ours(gguf_path):
    return load_smollm2(gguf_path)


@pytest.fixture(scope="module")
def hf_model(gguf_path):
    transformers = pytest.importorskip("transformers")
    model = transformers.AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name,
                                                              dtype=torch.float32)
    model.generation_config.eos_token_id = None  # decode every requested token, as generate() does
    return model.eval()


@pytest.fixture(scope="module")
def hf_tokenizer(gguf_path):
    transformers = pytest.importorskip("transformers")
    return transformers.AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)


@pytest.mark.oracle
def test_config_from_metadata(gguf_path):
    c = config_from_gguf(open_gguf(gguf_path))
    assert (c.n_layers, c.d_model, c.n_heads, c.n_kv_heads, c.head_dim, c.d_ff) == (30, 576, 9, 3, 64, 1536)
    assert (c.vocab_size, c.max_seq_len, c.rope_base, c.tie_embeddings) == (49152, 8192, 1e5, True)
    assert c.norm_eps == pytest.approx(1e-5) and c.pattern_string == "A" * 30


@pytest.mark.oracle
def test_logits_match_transformers(ours, hf_model):
    model, tok = ours
    assert model.head.weight is model.embed.weight  # tied: the file has no output.weight
    worst = 0.0
    with torch.inference_mode():
        for prompt in PROMPTS:
            ids = torch.tensor([tok.encode(prompt)])
            worst = max(worst, (model(ids) - hf_model(ids).logits).abs().max().item())
    print(f"\nmax |logits - transformers logits| over {len(PROMPTS)} prompts: {worst:.2e}")
    assert worst < 1e-3


@pytest.fixture
def one_thread():
    """Single-token decoding is memory-bound: 1 thread is as fast as 2, and immune to a busy machine
    (with every core's thread in use, each parallel op can wait a scheduler slice for a preempted one)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.oracle
def test_greedy_decoding_matches_transformers(ours, hf_model, one_thread):
    model, tok = ours
    for prompt in PROMPTS:
        ids = torch.tensor([tok.encode(prompt)])
        mine = generate(model, ids, 32).tokens
        with torch.inference_mode():
            theirs = hf_model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=32,
                                       do_sample=False)
        assert mine.tolist() == theirs.tolist(), (tok.decode(mine[0]), tok.decode(theirs[0]))


@pytest.mark.oracle
def test_tokenizer_matches_transformers(ours, hf_tokenizer):
    tok = ours[1]
    assert (tok.vocab_size, tok.bos_id, tok.eos_id, tok.pad_id) == (49152, 1, 2, 2)
    for text in TEXTS:
        ids = tok.encode(text)
        assert ids == hf_tokenizer.encode(text, add_special_tokens=False), text
        assert tok.decode(ids) == text == hf_tokenizer.decode(ids)
    assert tok.encode("<|im_start|><|im_end|><|endoftext|>") == [1, 2, 0]
    assert tok.decode(tok.encode(tok.chat_prompt("hi")), skip_special_tokens=True) == "user\nhi\nassistant\n"


@pytest.mark.oracle
def test_tokenizer_isolates_digits_like_smollm2(ours, hf_tokenizer):
    """SmolLM2 ("smollm" pre-tokenizer) splits off every number character before the GPT-2 regex.

    transformers 5.23 rebuilds this GGUF tokenizer without that step (no "smollm" entry in its table of
    pre-tokenizers), so on whitespace before a number it differs; with the step added it agrees with us.
    """
    from tokenizers import Tokenizer, pre_tokenizers

    tok = ours[1]
    expected = {"x   1": ["x", "ĠĠĠ", "1"], "abc\n 7": ["abc", "ĊĠ", "7"], "a\t\t9": ["a", "ĉĉ", "9"],
                "x ½": ["x", "Ġ", "Â½"]}
    backend = Tokenizer.from_str(hf_tokenizer.backend_tokenizer.to_str())  # a copy, fixture untouched
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)])
    for text, pieces in expected.items():
        assert [tok.token(i) for i in tok.encode(text)] == pieces
        assert backend.encode(text, add_special_tokens=False).ids == tok.encode(text)


@pytest.mark.oracle
def test_truncated_file_raises_and_names_it(gguf_path, tmp_path):
    data = gguf_path.read_bytes()
    for cut in (1000, len(data) // 2, len(data) - 100):
        bad = tmp_path / f"cut{cut}.gguf"
        bad.write_bytes(data[:cut])
        with pytest.raises(ValueError, match=f"cut{cut}.gguf"):
            load_smollm2(bad)


@pytest.mark.oracle
def test_smollm2_with_another_pattern(gguf_path, ours):
    window = 8
    windowed, _ = load_smollm2(gguf_path, max_seq_len=64, pattern=[LayerSpec("S", {"window": window})] * 30)
    assert windowed.config.pattern_string == "S" * 30
    ids = torch.tensor([ours[1].encode(PROMPTS[0] + " Paris, and the capital of Italy is")])
    assert ids.shape[1] > window
    with torch.inference_mode():
        a, s = ours[0](ids), windowed(ids)
    assert torch.allclose(a[:, :window], s[:, :window], atol=1e-4)
    assert not torch.allclose(a[:, window:], s[:, window:], atol=1e-2)
