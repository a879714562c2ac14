"""Attention whose queries and keys come from elsewhere ("R", "P", "E"): module 02's dependency ablations.

Deconstructing Attention (arXiv 2510.11602) removes one dependency of Q and K at a time. V = H W_V always
comes from the block's own input; heads, softmax, rotary embedding and decode cache are standard
attention's (`Attention.attend`):

    R  RndEmbQK     Q, K from fixed random embeddings passed through the blocks below: the attention map no
                    longer depends on the sequence (removes *sequence dependency*)
    P  FixedSeqQK   Q, K from one fixed passage passed through the blocks below (likewise)
    E  StaticEmbQK  Q, K from the static input embeddings of the current tokens: the map depends on the
                    sequence but on nothing the layers below computed (removes *current-layer dependency*)

The reference sequences (random embeddings, the passage) reach each block through the model's side inputs
(`minihybrid.side_inputs`): one run of all blocks per model, with the same weights.
Choices where the paper is ambiguous: in the reference run the R and P blocks are plain attention over the
reference itself; the random embeddings are N(0, std^2) at the token embeddings' initial std, fixed by
`seed`; StaticEmbQK RMS-normalises the embeddings before projecting, as every other projection in the
model reads a normalised input. The decode cache keeps K and V as attention's does; for R and P the keys
are the same for every sequence and could be shared across sequences, halving it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from minihybrid.layers import register
from minihybrid.layers.attention import Attention
from minihybrid.layers.norm import RMSNorm


class BorrowedQK(Attention):
    """Attention with Q and K projected from `qk_input(x, side, start_pos)` instead of x."""

    side_inputs = True

    def forward(self, x: torch.Tensor, cache=None, start_pos: int = 0, side=None) -> torch.Tensor:
        """x: (B, T, d_model) for tokens at positions start_pos.. -> (B, T, d_model)."""
        return self.attend(self.qk_input(x, side, start_pos), x, cache, start_pos)


class ReferenceQK(BorrowedQK):
    """Q, K from a fixed reference sequence's states at this block; subclasses define the sequence."""

    def qk_input(self, x: torch.Tensor, side, start_pos: int) -> torch.Tensor:
        states = side.reference(self) if side is not None else None
        if states is None:  # a reference run, or called alone: the input is its own reference
            return x
        return states[self.layer_idx][:, start_pos:start_pos + x.shape[1]]  # (1, T, d_model)


@register("R")
class RndEmbQK(ReferenceQK):
    """Removes sequence dependency: Q, K from fixed random embeddings (seeded by `seed`) passed through the
    blocks below; the attention map is the same for every input."""

    def __init__(self, config, layer_idx: int, seed: int = 0):
        super().__init__(config, layer_idx)
        self.seed, self.std, self.max_len = seed, config.embedding_std, config.max_seq_len
        self.reference_key = ("random embeddings", seed)

    def reference_embeddings(self, embed: torch.nn.Embedding, length: int) -> torch.Tensor:
        """(1, length, d_model): the first `length` of max_seq_len fixed random embeddings."""
        seeded = torch.Generator().manual_seed(self.seed)
        noise = torch.randn(self.max_len, embed.embedding_dim, generator=seeded)
        return (noise[:length] * self.std).to(embed.weight)[None]


@register("P")
class FixedSeqQK(ReferenceQK):
    """Removes sequence dependency: Q, K from one fixed passage passed through the blocks below.

    `passage`: token ids, or a str read as UTF-8 bytes (byte-level models), at least max_seq_len long;
    None takes max_seq_len token ids drawn with a fixed seed."""

    def __init__(self, config, layer_idx: int, passage: str | Sequence[int] | None = None):
        super().__init__(config, layer_idx)
        if passage is None:
            ids = torch.randint(0, config.vocab_size, (config.max_seq_len,),
                                generator=torch.Generator().manual_seed(0))
        else:
            ids = torch.tensor(list(passage.encode()) if isinstance(passage, str) else list(passage))
        if len(ids) < config.max_seq_len:
            raise ValueError(f"FixedSeqQK passage has {len(ids)} tokens, shorter than the context "
                             f"(max_seq_len={config.max_seq_len}): every position needs its own Q and K")
        if ids.dim() != 1 or ids.dtype != torch.long or not 0 <= ids.min() <= ids.max() < config.vocab_size:
            raise ValueError(f"FixedSeqQK passage must be token ids in 0..{config.vocab_size - 1} (or a str "
                             "of bytes for a byte-level vocabulary)")
        self.register_buffer("passage_ids", ids[:config.max_seq_len], persistent=False)
        self.reference_key = ("passage", tuple(ids[:config.max_seq_len].tolist()))

    def reference_embeddings(self, embed: torch.nn.Embedding, length: int) -> torch.Tensor:
        """(1, length, d_model): the embeddings of the passage's first `length` tokens."""
        return embed(self.passage_ids[:length])[None]


@register("E")
class StaticEmbQK(BorrowedQK):
    """Removes current-layer dependency: Q, K from the static input embeddings of the current tokens."""

    def __init__(self, config, layer_idx: int):
        super().__init__(config, layer_idx)
        self.embed_norm = RMSNorm(config.d_model, config.norm_eps)

    def qk_input(self, x: torch.Tensor, side, start_pos: int) -> torch.Tensor:
        """The normalised static embeddings of this call's tokens (x itself when called alone)."""
        return self.embed_norm(side.embeddings if side is not None else x)
