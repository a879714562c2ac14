"""Non-approximate attention ("N"): softmax's exact form kept, pairwise query-key similarity removed.

Deconstructing Attention (arXiv 2510.11602), the variant that relaxes the *mathematical form* without
approximating it. Per head (D the head dim, j <= i causal):

    q_j = SiLU(W_Q h_j),   k_j = W_K h_j,   v_j = W_V h_j
    s_j = (q_j . k_j) / sqrt(D)                                   one score per token, no q_i . k_j pairs
    o_i = sum_{j<=i} exp(s_j) v_j / sum_{j<=i} exp(s_j)           softmax over time, normalised causally

Every query averages the values so far with the same weights; only how far the average reaches differs.
Training computes it as softmax attention whose score rows all equal s: `scaled_dot_product_attention`
with a one-dimensional query of ones and key s (numerically stable, fused). Decoding keeps a fixed-size
state per head, the log of the normaliser and the current average:

    lse_i = log sum_{j<=i} exp(s_j)    (B, H),      avg_i = o_i    (B, H, D)

and a new chunk of tokens treats that state as one extra key with score lse and value avg, visible to all.

Choices where the paper is ambiguous: SiLU on Q only (as its equation writes it), K linear; no rotary
embedding (a same-token score has no relative position to encode); grouped-query models share K and V
across each group as attention does. `qk_norm=True` RMS-normalises q and k per head before the product
(the paper's remedy for the logits that blow up when every layer is this variant).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from minihybrid.layers import register
from minihybrid.layers.cache import RecurrentState
from minihybrid.layers.norm import RMSNorm


def same_token_scores(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """q (B, H, T, D), k (B, H, T, D) -> s (B, H, T): (q_j . k_j) / sqrt(D).

    Exercise twin: ex02.non_approx_scores.
    """
    return (q * k).sum(-1) / math.sqrt(q.shape[-1])


def causal_softmax_average(s: torch.Tensor, v: torch.Tensor, lse=None, avg=None):
    """o (B, H, T, Dv): o_i = sum_{j<=i} exp(s_j) v_j / sum_{j<=i} exp(s_j), and the state after the last
    token (lse (B, H), avg (B, H, Dv)); s (B, H, T), v (B, H, T, Dv). A state (lse, avg) from earlier tokens
    enters as one key with score lse and value avg.

    Exercise twin: ex02.non_approx_attention (without the state).
    """
    t = s.shape[-1]
    keys, values, mask = s[..., None], v, None
    if lse is not None:
        keys = torch.cat([lse[..., None, None], keys], dim=-2)
        values = torch.cat([avg[..., None, :], values], dim=-2)
        mask = torch.ones(t, t + 1, dtype=torch.bool, device=s.device).tril(1)
    ones = torch.ones_like(s[..., None])
    o = F.scaled_dot_product_attention(ones, keys, values, attn_mask=mask, is_causal=mask is None, scale=1.0)
    return o, torch.logsumexp(keys[..., 0], dim=-1), o[..., -1, :]


@register("N")
class NonApproxAttention(nn.Module):
    """Relaxes the mathematical form without approximating it: a softmax over time of same-token scores
    (no pairwise query-key similarity); a fixed-size decode state."""

    def __init__(self, config, layer_idx: int, qk_norm: bool = False):
        super().__init__()
        if not isinstance(qk_norm, bool):
            raise TypeError(f"qk_norm must be True or False, got {qk_norm!r}")
        self.layer_idx = layer_idx
        self.n_heads, self.n_kv_heads, self.head_dim = config.n_heads, config.n_kv_heads, config.head_dim
        d = config.d_model
        self.q_proj = nn.Linear(d, self.n_heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(d, self.n_kv_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(d, self.n_kv_heads * self.head_dim, bias=False)
        self.o_proj = nn.Linear(self.n_heads * self.head_dim, d, bias=False)
        self.qk_norm = nn.ModuleList([RMSNorm(self.head_dim, config.norm_eps) for _ in range(2)]) if qk_norm \
            else None

    def _project(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, T, d_model) -> the pre-softmax scores s (B, H, T) and the values (B, H, T, D)."""
        b, t, _ = x.shape
        group = self.n_heads // self.n_kv_heads

        def heads(proj, n):
            return proj(x).view(b, t, n, self.head_dim).transpose(1, 2)

        q = F.silu(heads(self.q_proj, self.n_heads))
        k, v = (heads(p, self.n_kv_heads).repeat_interleave(group, dim=1) for p in (self.k_proj, self.v_proj))
        if self.qk_norm is not None:
            q, k = self.qk_norm[0](q), self.qk_norm[1](k)
        return self._score(q, k), v

    def _score(self, q, k):
        """s (B, H, T) by `same_token_scores` (plug_in can swap in ex02.non_approx_scores)."""
        return same_token_scores(q, k)

    def _average(self, s, v):
        """o (B, H, T, D) of a whole sequence by `causal_softmax_average` (plug_in can swap in
        ex02.non_approx_attention)."""
        return causal_softmax_average(s, v)[0]

    def forward(self, x: torch.Tensor, cache: RecurrentState | None = None, start_pos: int = 0):
        """x: (B, T, d_model) for tokens at positions start_pos.. -> (B, T, d_model)."""
        s, v = self._project(x)
        if cache is None:
            o = self._average(s, v)
        else:
            cache.check_next(f"layer {self.layer_idx} (non-approximate)", x.shape[0], start_pos)
            lse, avg = cache.tensors["lse"], cache.tensors["avg"]
            o, new_lse, new_avg = causal_softmax_average(s, v, lse if start_pos else None, avg)
            lse.copy_(new_lse)
            avg.copy_(new_avg)
            cache.length += x.shape[1]
        return self.o_proj(o.transpose(1, 2).flatten(2))

    def logits(self, x: torch.Tensor, side=None) -> torch.Tensor:
        """The pre-softmax scores s (B, H, T) of x (B, T, d_model): one per token and head."""
        return self._project(x)[0]

    def mixing_weights(self, x: torch.Tensor, side=None) -> torch.Tensor:
        """(B, H, T, T): row i is the softmax of s over j <= i (every row weighs a token the same way)."""
        s = self.logits(x)
        t = s.shape[-1]
        causal = torch.ones(t, t, dtype=torch.bool, device=s.device).tril()
        return s[..., None, :].expand(*s.shape, t).masked_fill(~causal, float("-inf")).softmax(-1)

    def init_cache(self, batch: int, max_len: int, dtype=torch.float32, device=None) -> RecurrentState:
        """The log-normaliser (batch, H) and the running average (batch, H, D); max_len does not matter."""
        return RecurrentState(lse=torch.full((batch, self.n_heads), -torch.inf, dtype=dtype, device=device),
                              avg=torch.zeros(batch, self.n_heads, self.head_dim, dtype=dtype, device=device))

    def cache_bytes(self, seq_len: int, dtype_bytes: int = 4) -> int:
        """The state's bytes for one sequence: the same at every length."""
        return self.n_heads * (self.head_dim + 1) * dtype_bytes
