"""The MLP "mixer" ("F"): no token mixing at all, each position on its own.

Deconstructing Attention (arXiv 2510.11602), the variant that removes the principle of *mixing tokens*:
the attention sublayer becomes a gated SiLU MLP, down(silu(gate(x)) * up(x)), with its hidden width chosen
so that it has as many parameters as the attention it replaces (3 d h = d D (2 Hq + 2 Hkv), h rounded).
A model made only of these blocks is a bag of unigram predictors: its perplexity cannot improve with
context. It keeps no decode cache.
"""

from __future__ import annotations

import torch

from minihybrid.layers import register
from minihybrid.layers.cache import NoCache
from minihybrid.layers.ffn import SwiGLU


@register("F")
class TokenMLP(SwiGLU):
    """Removes token mixing: a gated MLP in the mixer's slot, sized like attention; x (B, T, d_model) ->
    (B, T, d_model), position by position."""

    def __init__(self, config, layer_idx: int):
        attention_params = config.d_model * (2 * config.n_heads + 2 * config.n_kv_heads) * config.head_dim
        super().__init__(config.d_model, max(1, round(attention_params / (3 * config.d_model))))

    def forward(self, x: torch.Tensor, cache: NoCache | None = None, start_pos: int = 0) -> torch.Tensor:
        return super().forward(x)

    def mixing_weights(self, x: torch.Tensor, side=None) -> torch.Tensor:
        """(B, 1, T, T): the identity, each position takes only its own token."""
        return torch.eye(x.shape[1], dtype=x.dtype, device=x.device).expand(x.shape[0], 1, -1, -1)

    def init_cache(self, batch: int, max_len: int, dtype=torch.float32, device=None) -> NoCache:
        return NoCache()

    def cache_bytes(self, seq_len: int, dtype_bytes: int = 4) -> int:
        return 0
