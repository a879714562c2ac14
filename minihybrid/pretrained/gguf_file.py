"""Opening a GGUF file and reading its metadata, for the loader and the tokenizer alike.

A GGUF file is a header of metadata (key -> value: "llama.block_count" -> 30, "tokenizer.ggml.tokens" ->
V strings, ...) followed by named tensors. `open_gguf` checks that the whole file is there before anything
reads it; `metadata` is the one way to read a key, with the file's name in every error.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from gguf import GGUFReader

_REQUIRED = object()  # metadata(..., default=_REQUIRED): a missing key is an error


def open_gguf(path: str | os.PathLike) -> GGUFReader:
    """A `GGUFReader` for `path`; anything that is not a complete GGUF file raises ValueError naming it.

    A path that does not exist raises FileNotFoundError; one that is not a str or PathLike, TypeError.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or pathlib.Path of a .gguf file, got {path!r}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no GGUF file at {path}")
    try:
        reader = GGUFReader(path)
    except OSError:
        raise
    except Exception as e:  # the reader fails with ValueError, IndexError, ... on corrupt input
        raise ValueError(f"{path} could not be read as a GGUF file (corrupt, truncated or another format): "
                         f"{e}") from e
    size = path.stat().st_size
    for tensor in reader.tensors:
        if tensor.data_offset + tensor.n_bytes > size or tensor.data.nbytes != tensor.n_bytes:
            raise ValueError(f"{path} is truncated: tensor {tensor.name} runs past the end of the file")
    return reader


def source_name(reader: GGUFReader) -> str:
    """The file a reader was opened on, for error messages."""
    return str(getattr(reader.data, "filename", None) or "GGUF file")


def metadata(reader: GGUFReader, key: str, default: Any = _REQUIRED) -> Any:
    """The value of metadata `key` (a number, string or list); `default` when absent, else ValueError."""
    field = reader.fields.get(key)
    if field is not None:
        return field.contents()
    if default is _REQUIRED:
        raise ValueError(f"{source_name(reader)} lacks the metadata key {key!r}")
    return default
