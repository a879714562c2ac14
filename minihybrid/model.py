"""HybridLM: embeddings -> blocks -> final norm -> LM head.

Dimensions: B batch, T tokens in this call, V vocabulary, d d_model, L blocks.

Each Block is pre-norm: x + mixer(norm(x)), then x + ffn(norm(x)); the mixer is any registered token
mixer (see `minihybrid.layers`), so a hybrid is just a layer pattern in the config. A mixer that reads more
than its block's input (the static embeddings, a fixed reference sequence's states) declares it and gets
them through one channel, `minihybrid.side_inputs`.

Incremental decoding keeps a `ModelCache` (one cache per block plus the next position):

    cache = model.init_cache(batch=1, max_len=256)
    logits = model(prompt_ids, cache=cache)      # prefill, (B, T, V)
    logits = model(next_id[:, None], cache=cache) # one step, (B, 1, V)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn

from minihybrid.checks import check_int, check_token_ids
from minihybrid.config import ModelConfig
from minihybrid.layers import build_mixer
from minihybrid.layers.ffn import SwiGLU
from minihybrid.layers.norm import RMSNorm
from minihybrid.side_inputs import SideInputs


class Block(nn.Module):
    def __init__(self, config: ModelConfig, layer_idx: int):
        super().__init__()
        self.mixer_norm = RMSNorm(config.d_model, config.norm_eps)
        self.mixer = build_mixer(config, layer_idx)
        self.ffn_norm = RMSNorm(config.d_model, config.norm_eps)
        self.ffn = SwiGLU(config.d_model, config.d_ff)
        self.side_inputs = getattr(self.mixer, "side_inputs", False)

    def forward(self, x: torch.Tensor, cache=None, start_pos: int = 0, side: SideInputs | None = None):
        """x: (B, T, d) -> (B, T, d); `side` reaches the mixer when it asks for side inputs."""
        extra = {"side": side} if self.side_inputs else {}
        x = x + self.mixer(self.mixer_norm(x), cache=cache, start_pos=start_pos, **extra)
        return x + self.ffn(self.ffn_norm(x))


@dataclass
class ModelCache:
    """Per-block caches for `batch` sequences and the position of the next token."""

    layers: list
    batch: int
    max_len: int
    pos: int = 0

    def rollback(self, pos: int) -> None:
        """Forget every token at position >= pos (e.g. drafted tokens the verifier rejected).

        Checks every layer first, so a refused rollback leaves the whole cache as it was.
        """
        if not 0 <= pos <= self.pos:
            raise ValueError(f"rollback position {pos} must be in 0..{self.pos} (the tokens seen so far)")
        for layer_cache in self.layers:
            layer_cache.check_rollback(pos)
        for layer_cache in self.layers:
            layer_cache.rollback(pos)
        self.pos = pos

    @property
    def nbytes(self) -> int:
        return sum(c.nbytes for c in self.layers)


class HybridLM(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.d_model)
        self.blocks = nn.ModuleList(Block(config, i) for i in range(config.n_layers))
        self.norm = RMSNorm(config.d_model, config.norm_eps)
        self.head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        if config.tie_embeddings:
            self.head.weight = self.embed.weight
        self.apply(self._init_weights)
        if config.embed_init_std is not None:  # after apply: a tied head's init would overwrite it
            nn.init.normal_(self.embed.weight, std=config.embed_init_std)
        self.reference_cache: dict = {}  # reference sequences' states at inference (minihybrid.side_inputs)

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=self.config.init_std)

    def forward(self, idx: torch.Tensor, cache: ModelCache | None = None,
                skip_layers: Iterable[int] | None = None, return_hidden: bool = False,
                last_only: bool = False):
        """idx: (B, T) token ids -> logits (B, T, V), or (B, 1, V) for the last position with last_only.

        cache: continue from `cache.pos` and store this call's tokens (advances `cache.pos` by T).
        skip_layers: block indices to leave out (their residual passes through unchanged).
        return_hidden: also return the list of L+1 residual streams (B, T, d): input and after each block.
        """
        self.check_ids(idx, cache)
        start_pos = cache.pos if cache is not None else 0
        skip = set(skip_layers or ())
        if not skip <= set(range(len(self.blocks))):
            raise ValueError(f"skip_layers {sorted(skip)} must be block indices in 0..{len(self.blocks) - 1}")
        x = self.embed(idx)
        side = SideInputs(self, x, start_pos + idx.shape[1])
        hidden = [x]
        for i, block in enumerate(self.blocks):
            if i not in skip:
                x = block(x, cache=cache.layers[i] if cache is not None else None, start_pos=start_pos,
                          side=side)
            hidden.append(x)
        if cache is not None:
            cache.pos = start_pos + idx.shape[1]
        logits = self.head(self.norm(x[:, -1:] if last_only else x))
        return (logits, hidden) if return_hidden else logits

    def check_ids(self, idx, cache: ModelCache | None = None, name: str = "idx") -> None:
        """idx: (B, T) torch.long ids in the vocabulary, fitting max_seq_len and the cache (from its pos)."""
        check_token_ids(name, idx, 2, self.config.vocab_size)
        end = (cache.pos if cache is not None else 0) + idx.shape[1]
        if end > self.config.max_seq_len:
            raise ValueError(f"{end} positions exceed max_seq_len={self.config.max_seq_len}")
        if cache is not None:
            if cache.batch != idx.shape[0]:
                raise ValueError(f"the cache was built for batch {cache.batch}, idx has batch {idx.shape[0]}")
            if end > cache.max_len:
                raise ValueError(f"cache holds {cache.max_len} positions; writing up to {end} overflows it")

    def init_cache(self, batch: int = 1, max_len: int | None = None) -> ModelCache:
        """Empty caches for decoding `batch` sequences up to max_len tokens (default: config.max_seq_len)."""
        max_len = self.config.max_seq_len if max_len is None else max_len
        check_int("init_cache: batch", batch)
        check_int("init_cache: max_len", max_len)
        if max_len > self.config.max_seq_len:
            raise ValueError(f"init_cache: max_len={max_len} exceeds max_seq_len={self.config.max_seq_len}")
        param = next(self.parameters())
        return ModelCache([b.mixer.init_cache(batch, max_len, dtype=param.dtype, device=param.device)
                           for b in self.blocks], batch, max_len)

    def cache_bytes(self, seq_len: int) -> list[int]:
        """Decode-cache bytes per block for one sequence of seq_len tokens."""
        dtype_bytes = next(self.parameters()).element_size()
        return [b.mixer.cache_bytes(seq_len, dtype_bytes=dtype_bytes) for b in self.blocks]

    def num_params(self, non_embedding: bool = True) -> int:
        n = sum(p.numel() for p in self.parameters())
        return n - self.embed.weight.numel() if non_embedding else n
