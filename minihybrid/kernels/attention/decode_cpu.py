"""A decode step's attention in one Numba call: rotate the new queries and keys (RoPE, rotate-half layout),
write the new keys and values into the KV cache, attend causally over the cache (float32, inference only).

Shapes: B batch, T new tokens at positions start..start + T - 1, Hq query heads, Hkv key/value heads (query
head h reads kv head h // (Hq // Hkv)), D head dim, C cache capacity (>= start + T).
    q (B, T, Hq, D), k and v (B, T, Hkv, D)   the projections, any strides (views of one fused output)
    cos, sin (>= start + T, D)                 ``layers.rope.rope_tables``
    cache_k, cache_v (B, Hkv, C, D)            contiguous; positions < start already written
    out (B, T, Hq, D)                          contiguous
The layer's own path does the same with about twenty small torch ops (rotary, the cache write, SDPA and its
checks), 100-110 us per layer on a decode row against about 25 here. Every query (b, h, i) is computed on
its own over keys 0..start + i, so the result does not depend on T: a verify pass over k tokens gives a
query the same bits as the single-token step would.
"""

from __future__ import annotations

import numpy as np
import torch
from numba import njit, prange


@njit(fastmath=True, cache=True, inline="always")
def _rotate(x, cos, sin, p, out, scale):
    """out = RoPE(x) * scale for one head vector x (D,) at position p."""
    half = x.shape[0] // 2
    for c in range(half):
        x1, x2 = x[c], x[c + half]
        out[c] = (x1 * cos[p, c] - x2 * sin[p, c]) * scale
        out[c + half] = (x2 * cos[p, c + half] + x1 * sin[p, c + half]) * scale


@njit(parallel=True, fastmath=True, cache=True)
def _decode_attention_kernel(q, k, v, cos, sin, cache_k, cache_v, start, scale, out):
    batch, t, hq, d = q.shape
    hkv = k.shape[2]
    group = hq // hkv
    one = np.float32(1.0)
    for b in range(batch):
        for i in range(t):
            for h in range(hkv):
                _rotate(k[b, i, h], cos, sin, start + i, cache_k[b, h, start + i], one)
                cache_v[b, h, start + i] = v[b, i, h]
    for item in prange(batch * hq * t):
        b, rest = divmod(np.int64(item), hq * t)  # prange indices may be unsigned
        h, i = divmod(rest, t)
        n = start + i + 1  # keys 0..start + i
        keys, values = cache_k[b, h // group], cache_v[b, h // group]
        qr = np.empty(d, np.float32)
        _rotate(q[b, i, h], cos, sin, start + i, qr, np.float32(scale))
        scores = np.empty(n, np.float32)
        top = np.float32(-np.inf)
        for j in range(n):
            s = np.float32(0.0)
            for c in range(d):
                s += qr[c] * keys[j, c]
            scores[j] = s
            top = max(top, s)
        total = np.float32(0.0)
        acc = np.zeros(d, np.float32)
        for j in range(n):
            e = np.exp(scores[j] - top)
            total += e
            for c in range(d):
                acc[c] += e * values[j, c]
        for c in range(d):
            out[b, i, h, c] = acc[c] / total


def decode_attention_cpu(q, k, v, cos, sin, cache_k, cache_v, start: int, scale: float) -> torch.Tensor:
    """Attention output (B, T, Hq, D) for the shapes in the module docstring; writes the cache. No checks:
    the caller (``layers.attention.Attention``) validates."""
    out = q.new_empty(q.shape)
    _decode_attention_kernel(q.numpy(), k.numpy(), v.numpy(), cos.numpy(), sin.numpy(), cache_k.numpy(),
                             cache_v.numpy(), start, scale, out.numpy())
    return out
