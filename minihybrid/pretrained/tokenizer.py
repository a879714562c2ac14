"""The byte-level BPE tokenizer stored in a GGUF file (SmolLM2's), rebuilt with the `tokenizers` library.

A GGUF file carries no tokenizer.json, only the pieces (llama.cpp's metadata keys):

    tokenizer.ggml.model        "gpt2": byte-level BPE (every byte is spelled as one printable character)
    tokenizer.ggml.tokens       V token strings in that byte alphabet; the id is the position
    tokenizer.ggml.merges       "a b" pairs, highest priority first
    tokenizer.ggml.token_type   1 normal, 3 control (<|im_start|>, <|im_end|>, ...), 4 user-defined
    tokenizer.ggml.pre          which pre-tokenizer splits text before BPE; SmolLM2 says "smollm"
    tokenizer.ggml.{bos,eos,padding}_token_id

SmolLM2's pre-tokenizer ("smollm", as in its original tokenizer.json and llama.cpp) first isolates every
digit, then applies GPT-2's byte-level regex. Isolating digits first matters beyond numbers: in "x   1"
the whitespace run before the digit stays one piece ("ĠĠĠ", "1"), where GPT-2's regex alone would leave
the last space to the digit ("ĠĠ", "Ġ", "1").
"""

from __future__ import annotations

import os

from gguf import GGUFReader
from tokenizers import AddedToken, Tokenizer, decoders, pre_tokenizers
from tokenizers.models import BPE

from minihybrid.pretrained.gguf_file import metadata, open_gguf, source_name

_CONTROL, _USER_DEFINED = 3, 4

_PRE_TOKENIZERS = {  # tokenizer.ggml.pre -> the splits applied before byte-level BPE
    "smollm": lambda: pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    ),
    "gpt-2": lambda: pre_tokenizers.ByteLevel(add_prefix_space=False),
}


class GGUFTokenizer:
    """encode / decode text for a GGUF model; special tokens written in the text are recognised.

    >>> tok = GGUFTokenizer.from_gguf(path)          # doctest: +SKIP
    >>> tok.decode(tok.encode("Hello 42"))           # doctest: +SKIP
    'Hello 42'
    """

    def __init__(self, backend: Tokenizer, bos_id: int, eos_id: int, pad_id: int | None = None):
        self.backend = backend
        self.bos_id, self.eos_id, self.pad_id = bos_id, eos_id, pad_id

    @classmethod
    def from_gguf(cls, path: str | os.PathLike) -> GGUFTokenizer:
        """Read the tokenizer of the GGUF file at `path` (checked by `open_gguf`)."""
        return cls.from_reader(open_gguf(path))

    @classmethod
    def from_reader(cls, reader: GGUFReader) -> GGUFTokenizer:
        """Build from an open `gguf.GGUFReader`; ValueError when the file's tokenizer is not supported."""
        source = source_name(reader)
        kind = metadata(reader, "tokenizer.ggml.model")
        pre = metadata(reader, "tokenizer.ggml.pre", "gpt-2")
        if kind != "gpt2" or pre not in _PRE_TOKENIZERS:
            raise ValueError(f"{source}: tokenizer {kind!r} with pre-tokenizer {pre!r} is not supported "
                             f"(only 'gpt2' with {sorted(_PRE_TOKENIZERS)})")
        tokens = metadata(reader, "tokenizer.ggml.tokens")
        types = metadata(reader, "tokenizer.ggml.token_type", [1] * len(tokens))
        merges = [tuple(m.split(" ")) for m in metadata(reader, "tokenizer.ggml.merges")]
        if any(len(m) != 2 for m in merges):
            raise ValueError(f"{source}: a merge is not of the form 'left right'")
        backend = Tokenizer(BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges))
        backend.pre_tokenizer = _PRE_TOKENIZERS[pre]()
        backend.decoder = decoders.ByteLevel()
        backend.add_special_tokens(
            [AddedToken(t, special=True, normalized=False) for t, k in zip(tokens, types) if k == _CONTROL]
        )
        backend.add_tokens(
            [AddedToken(t, normalized=False) for t, k in zip(tokens, types) if k == _USER_DEFINED]
        )
        eos = int(metadata(reader, "tokenizer.ggml.eos_token_id"))
        pad = metadata(reader, "tokenizer.ggml.padding_token_id", None)
        return cls(backend, int(metadata(reader, "tokenizer.ggml.bos_token_id", eos)), eos,
                   None if pad is None else int(pad))

    @property
    def vocab_size(self) -> int:
        return self.backend.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str) -> list[int]:
        """Token ids of text; no BOS is added (SmolLM2's files say add_bos_token = false)."""
        return self.backend.encode(text, add_special_tokens=False).ids

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        """ids: a list of ints or a 1-D tensor -> text (invalid UTF-8 becomes U+FFFD)."""
        if hasattr(ids, "tolist"):
            ids = ids.tolist()
        return self.backend.decode(ids, skip_special_tokens=skip_special_tokens)

    def token(self, token_id: int) -> str:
        """The vocabulary entry of one id, in the byte alphabet (a space shows as 'Ġ')."""
        return self.backend.id_to_token(token_id)

    @staticmethod
    def chat_prompt(user_message: str, system: str | None = None) -> str:
        """One user turn in SmolLM2's chat format, ending where the assistant's answer starts.

        The file's chat template inserts a default system turn ("You are a helpful AI assistant named
        SmolLM, trained by Hugging Face") when none is given; pass `system` to add one explicitly.
        """
        head = f"<|im_start|>system\n{system}<|im_end|>\n" if system is not None else ""
        return f"{head}<|im_start|>user\n{user_message}<|im_end|>\n<|im_start|>assistant\n"
