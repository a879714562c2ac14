"""The intra-layer hybrid ("H"): attention heads and SSM heads side by side inside one block.

Dimensions: B batch, T tokens, d d_model, n n_heads of D channels each, W = (n / 2) D the width of a branch.

Half of the model's heads form an attention branch (the "A" mixer with n / 2 query heads, and half the kv
heads), the other half an SSM branch (the "M" mixer with n / 2 heads of D channels); both read the same
input and run in parallel. Each branch's output (B, T, W) gets its own RMSNorm, then they are fused:

    concat   [norm_a(attn) ; norm_s(ssm)]  (B, T, 2W) -> out_proj -> (B, T, d)
    diff     norm_a(attn) - norm_s(ssm)    (B, T, W)  -> out_proj -> (B, T, d)

(Hybrid Architectures for Language Models, arXiv 2510.04800, with "Diff" as its subtraction fusion.) The
paper normalises each branch with a GroupNorm; an RMSNorm per branch is used here (the norms' learned gains
also set how much of each branch the subtraction keeps). The branches are the A and M modules themselves,
with their own output projections replaced by this mixer's single one.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from minihybrid.layers import register
from minihybrid.layers.attention import Attention
from minihybrid.layers.cache import CompositeCache
from minihybrid.layers.ssm import Mamba2

FUSIONS = ("concat", "diff")


def fuse_branches(attn_out, ssm_out, attn_weight, ssm_weight, fusion: str = "concat", eps: float = 1e-5):
    """RMSNorm each branch (B, T, W) with its gain (W,), then concatenate -> (B, T, 2W) or subtract
    -> (B, T, W).

    Exercise twin: ex01.fuse_branches.
    """
    if fusion not in FUSIONS:
        raise ValueError(f"fusion must be one of {', '.join(FUSIONS)}, got {fusion!r}")
    a = F.rms_norm(attn_out, attn_weight.shape, attn_weight, eps)
    s = F.rms_norm(ssm_out, ssm_weight.shape, ssm_weight, eps)
    return torch.cat([a, s], dim=-1) if fusion == "concat" else a - s


@register("H")
class IntraHybrid(nn.Module):
    """Half the heads attention, half SSM, fused by `fusion` ("concat" or "diff"); the SSM branch takes the
    "M" options d_state, chunk_size and scan_backend."""

    def __init__(self, config, layer_idx: int, fusion: str = "concat", d_state: int = 64,
                 chunk_size: int = 64, scan_backend: str = "auto"):
        super().__init__()
        if fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {', '.join(FUSIONS)}, got {fusion!r}")
        if config.n_heads % 2 or config.n_kv_heads % 2 and config.n_kv_heads != 1:
            raise ValueError(f"the intra-layer hybrid splits the heads in two halves: "
                             f"n_heads={config.n_heads} and n_kv_heads={config.n_kv_heads} must be even "
                             "(or n_kv_heads 1)")
        half = config.n_heads // 2
        attn_config = dataclasses.replace(config, n_heads=half, n_kv_heads=max(1, config.n_kv_heads // 2))
        self.fusion, self.eps = fusion, config.norm_eps
        self.width = half * config.head_dim
        self.attn = Attention(attn_config, layer_idx)
        self.ssm = Mamba2(config, layer_idx, d_state=d_state, head_dim=config.head_dim, d_inner=self.width,
                          chunk_size=chunk_size, scan_backend=scan_backend)
        # the branches hand over their raw outputs: their own output stages are this mixer's fusion
        self.attn.o_proj = nn.Identity()
        self.ssm.norm = nn.Identity()
        self.ssm.out_proj = nn.Identity()
        self.attn_norm = nn.Parameter(torch.ones(self.width))
        self.ssm_norm = nn.Parameter(torch.ones(self.width))
        fused = 2 * self.width if fusion == "concat" else self.width
        self.out_proj = nn.Linear(fused, config.d_model, bias=False)

    def forward(self, x: torch.Tensor, cache: CompositeCache | None = None,
                start_pos: int = 0) -> torch.Tensor:
        """x: (B, T, d_model) for tokens at positions start_pos.. -> (B, T, d_model)."""
        a = self.attn(x, cache=cache["attn"] if cache is not None else None, start_pos=start_pos)
        s = self.ssm(x, cache=cache["ssm"] if cache is not None else None, start_pos=start_pos)
        return self.out_proj(self._fuse(a, s))

    def _fuse(self, a: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        """The branches (B, T, W) fused by `fuse_branches` (plug_in can swap in ex01.fuse_branches)."""
        return fuse_branches(a, s, self.attn_norm, self.ssm_norm, self.fusion, self.eps)

    def init_cache(self, batch: int, max_len: int, dtype=torch.float32, device=None) -> CompositeCache:
        return CompositeCache(attn=self.attn.init_cache(batch, max_len, dtype, device),
                              ssm=self.ssm.init_cache(batch, max_len, dtype, device))

    def cache_bytes(self, seq_len: int, dtype_bytes: int = 4) -> int:
        """The attention branch's keys/values (half the kv heads) plus the SSM branch's fixed state."""
        return self.attn.cache_bytes(seq_len, dtype_bytes) + self.ssm.cache_bytes(seq_len, dtype_bytes)
