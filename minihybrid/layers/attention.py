"""Softmax attention with grouped-query heads, RoPE and an optional sliding window.

Dimensions: B batch, T new tokens, Tk keys attended, Hq query heads, Hkv key/value heads
(Hq % Hkv == 0; query head h reads kv head h // (Hq // Hkv)), D head dim.

The attention itself runs through `minihybrid.kernels.attention`, with the backend named by
`ModelConfig.attn_backend`: "torch" (fused SDPA, autograd; the default), "reference" (the readable spec,
autograd), "numba" or "cuda" (inference only) or "auto". A windowed decode cache is a ring buffer whose keys
are not in position order; it always goes through SDPA with a mask built from the keys' positions. Decoding a
few float32 CPU tokens after the first position into a full-attention cache (any backend but "reference")
takes one fused kernel for rotary, the cache write and attention (``kernels/attention/decode_cpu.py``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from minihybrid.checks import check_int
from minihybrid.kernels.attention import BACKENDS
from minihybrid.kernels.attention import attention as attention_kernel
from minihybrid.kernels.attention.reference import attention_mask, position_mask
from minihybrid.kernels.dispatch import DIFFERENTIABLE, lazy, needs_grad
from minihybrid.layers import register
from minihybrid.layers.cache import KVCache
from minihybrid.layers.projections import project
from minihybrid.layers.rope import Rotary, rope_tables

DECODE_TOKENS = 16  # new tokens up to here take the fused decode kernel (a decode step, a verify step)
_decode_attention = lazy("minihybrid.kernels.attention.decode_cpu", "decode_attention_cpu")  # imports numba


@register("A")
class Attention(nn.Module):
    """Causal multi-head / grouped-query attention; a per-layer `window` option (tokens, incl. the current
    one) limits the view, e.g. LayerSpec("A", {"window": 128})."""

    FUSABLE = (("q_proj", "k_proj", "v_proj"),)  # linears reading one input (layers/projections.py)

    def __init__(self, config, layer_idx: int, window: int | None = None):
        super().__init__()
        self.layer_idx = layer_idx
        self.n_heads, self.n_kv_heads, self.head_dim = config.n_heads, config.n_kv_heads, config.head_dim
        check_int("window", window, optional=True)  # tokens each query sees, itself included
        self.window = window
        self.backend = config.attn_backend
        if self.backend not in BACKENDS:
            raise ValueError(f"attn_backend {self.backend!r} is not one of {', '.join(map(repr, BACKENDS))}")
        d = config.d_model
        self.q_proj = nn.Linear(d, self.n_heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(d, self.n_kv_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(d, self.n_kv_heads * self.head_dim, bias=False)
        self.o_proj = nn.Linear(self.n_heads * self.head_dim, d, bias=False)
        self.rotary = Rotary(self.head_dim, config.rope_base)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, start_pos: int = 0) -> torch.Tensor:
        """x: (B, T, d_model) for tokens at positions start_pos.. -> (B, T, d_model)."""
        return self.attend(self.qk_input(x, None, start_pos), x, cache, start_pos)

    def qk_input(self, x: torch.Tensor, side, start_pos: int) -> torch.Tensor:
        """What queries and keys are projected from: the input itself (module 02's variants borrow them)."""
        return x

    def _heads(self, qk_in: torch.Tensor, v_in: torch.Tensor, start_pos: int):
        """q (B, Hq, T, D), k and v (B, Hkv, T, D), rotated; qk_in may have batch 1 (shared by the batch)."""
        b, t, _ = v_in.shape
        if qk_in is v_in:
            q, k, v = project(qk_in, (self.q_proj, self.k_proj, self.v_proj))
        else:
            q, k, v = self.q_proj(qk_in), self.k_proj(qk_in), self.v_proj(v_in)

        def heads(y, n):
            return y.view(y.shape[0], t, n, self.head_dim).transpose(1, 2).expand(b, -1, -1, -1)

        q, k = self.rotary(heads(q, self.n_heads), heads(k, self.n_kv_heads), start_pos)
        return q, k, heads(v, self.n_kv_heads)

    def attend(self, qk_in: torch.Tensor, v_in: torch.Tensor, cache: KVCache | None, start_pos: int):
        """Queries and keys projected from qk_in (B or 1, T, d_model), values from v_in (B, T, d_model)."""
        b, t, _ = v_in.shape
        if start_pos and self._decodes_fused(qk_in, v_in, cache):
            return self.o_proj(self._decode(v_in, cache, start_pos))
        q, k, v = self._heads(qk_in, v_in, start_pos)
        key_pos = None
        if cache is not None:
            k, v, key_pos = cache.update(k, v, start_pos)
        y = self._attend(q, k, v, key_pos, start_pos)
        return self.o_proj(y.transpose(1, 2).reshape(b, t, self.n_heads * self.head_dim))

    def _decodes_fused(self, qk_in: torch.Tensor, v_in: torch.Tensor, cache: KVCache | None) -> bool:
        """True for a few float32 CPU tokens without autograd, decoding into a full-attention KVCache, with
        queries, keys and values from one input and a backend that is not the readable "reference"."""
        return (type(cache) is KVCache and qk_in is v_in and self.window is None
                and self.backend != "reference" and v_in.dtype == torch.float32 and v_in.device.type == "cpu"
                and v_in.shape[1] <= DECODE_TOKENS
                and not (torch.is_grad_enabled() and needs_grad(v_in, *self.parameters())))

    def _decode(self, x: torch.Tensor, cache: KVCache, start_pos: int) -> torch.Tensor:
        """(B, T, d_model) -> attention output (B, T, Hq * D), rotary, cache write and attention in one
        kernel (``kernels/attention/decode_cpu.py``)."""
        b, t, _ = x.shape
        heads = (self.n_heads, self.n_kv_heads, self.n_kv_heads)
        q, k, v = (y.view(b, t, n, self.head_dim)
                   for y, n in zip(project(x, (self.q_proj, self.k_proj, self.v_proj)), heads))
        cos, sin = rope_tables(self.head_dim, self.rotary.base, start_pos + t, x.device, x.dtype)
        y = _decode_attention(q, k, v, cos, sin, *cache.claim(start_pos, t), start_pos, self.head_dim ** -0.5)
        return y.view(b, t, self.n_heads * self.head_dim)

    def logits(self, x: torch.Tensor, side=None) -> torch.Tensor:
        """The pre-softmax scores (B, Hq, T, T) of x (B, T, d_model) at positions 0.., -inf where masked."""
        q, k, _ = self._heads(self.qk_input(x, side, 0), x, 0)
        k = k.repeat_interleave(self.n_heads // self.n_kv_heads, dim=1)
        t = x.shape[1]
        mask = attention_mask(t, t, causal=True, window=self.window, device=x.device)
        return (q @ k.transpose(-1, -2) / self.head_dim ** 0.5).masked_fill(~mask, float("-inf"))

    def mixing_weights(self, x: torch.Tensor, side=None) -> torch.Tensor:
        """(B, Hq, T, T): how much each position's output takes from each earlier position's value."""
        return self.logits(x, side).softmax(-1)

    def _attend(self, q, k, v, key_pos, start_pos):
        if key_pos is not None:  # windowed ring buffer: keys in slot order, mask by absolute position
            q_pos = torch.arange(start_pos, start_pos + q.shape[2], device=q.device)
            mask = position_mask(q_pos, key_pos, causal=True, window=self.window)
            return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True)
        if self.backend not in DIFFERENTIABLE:  # compiled kernels ("auto" may pick one) need contiguity
            q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
        return attention_kernel(q, k, v, causal=True, window=self.window, backend=self.backend)

    def init_cache(self, batch: int, max_len: int, dtype=torch.float32, device=None) -> KVCache:
        return KVCache(batch, self.n_kv_heads, self.head_dim, max_len, window=self.window,
                       dtype=dtype, device=device)

    def cache_bytes(self, seq_len: int, dtype_bytes: int = 4) -> int:
        """Bytes of K and V held for one sequence of seq_len tokens (a window bounds it)."""
        return 2 * self.n_kv_heads * self.head_dim * KVCache.capacity_for(seq_len, self.window) * dtype_bytes


@register("S")
class SlidingWindowAttention(Attention):
    """Attention limited to the `window` most recent tokens (the query's own included)."""

    def __init__(self, config, layer_idx: int, window: int = 64):
        super().__init__(config, layer_idx, window=window)
