"""The "torch" backend: attention through PyTorch's fused ``F.scaled_dot_product_attention`` (autograd).

Shapes: q (B, Hq, Tq, D), k and v (B, Hkv, Tk, D), output (B, Hq, Tq, D); ``enable_gqa`` lets query head h
read kv head h // (Hq // Hkv). Queries align to the end of the keys (query i at position Tk - Tq + i).
The cheapest mask that gives the reference's result is passed: SDPA's own causal mask (top-left aligned)
when Tq == Tk, none when every key is visible (a single causal query, or no causal mask) and there is no
window, else a boolean (Tq, Tk) mask.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from minihybrid.kernels.attention.reference import attention_mask


def attention_sdpa(q, k, v, causal: bool = True, window: int | None = None,
                   scale: float | None = None) -> torch.Tensor:
    """softmax(q k^T * scale + mask) v with SDPA; scale defaults to 1/sqrt(D)."""
    tq, tk = q.shape[2], k.shape[2]
    if window is None and causal and tq == tk:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale, enable_gqa=True)
    if window is None and (not causal or tq == 1):
        return F.scaled_dot_product_attention(q, k, v, scale=scale, enable_gqa=True)
    mask = attention_mask(tq, tk, causal, window, device=q.device)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale, enable_gqa=True)
