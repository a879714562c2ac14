"""Pretrained weights from GGUF files (SmolLM2-135M-Instruct). Imports go one way, top to bottom:

    gguf_file   open_gguf (a checked GGUFReader), metadata (the one metadata lookup), source_name
    tokenizer   GGUFTokenizer: the file's byte-level BPE tokenizer
    loader      config_from_gguf, state_dict_from_gguf, load_gguf_model, load_smollm2 (any layer pattern)
"""

from minihybrid.pretrained.gguf_file import metadata, open_gguf, source_name
from minihybrid.pretrained.loader import (
    config_from_gguf,
    load_gguf_model,
    load_smollm2,
    state_dict_from_gguf,
    unpermute_qk,
)
from minihybrid.pretrained.tokenizer import GGUFTokenizer

__all__ = [
    "GGUFTokenizer",
    "config_from_gguf",
    "load_gguf_model",
    "load_smollm2",
    "metadata",
    "open_gguf",
    "source_name",
    "state_dict_from_gguf",
    "unpermute_qk",
]
