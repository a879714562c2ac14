"""Reference scaled dot-product attention: the readable specification every fast path is tested against.

Shapes: q (B, Hq, Tq, D), k and v (B, Hkv, Tk, D), output (B, Hq, Tq, D); Hq is a multiple of Hkv (GQA).
Queries are aligned to the END of the keys: query i sits at absolute position Tk - Tq + i, so a decode step
(Tq = 1) sees every cached key.
"""

from __future__ import annotations

import torch


def position_mask(q_pos: torch.Tensor, k_pos: torch.Tensor, causal: bool, window: int | None) -> torch.Tensor:
    """Boolean (Tq, Tk) mask from absolute positions q_pos (Tq,) and k_pos (Tk,): True = may attend.

    Causal: keys at positions <= the query's. Window w: keys at positions > p - w, i.e. the w most recent
    keys including itself (applied on top of ``causal``; without causal it bounds only the past).
    """
    q_pos, k_pos = q_pos[:, None], k_pos[None, :]
    mask = torch.ones(q_pos.shape[0], k_pos.shape[1], dtype=torch.bool, device=q_pos.device)
    if causal:
        mask &= k_pos <= q_pos
    if window is not None:
        mask &= k_pos > q_pos - window
    return mask


def attention_mask(tq: int, tk: int, causal: bool, window: int | None, device=None) -> torch.Tensor:
    """Boolean (tq, tk) mask for keys at positions 0..tk-1 and queries aligned to the end (tk - tq + i)."""
    q_pos, k_pos = torch.arange(tk - tq, tk, device=device), torch.arange(tk, device=device)
    return position_mask(q_pos, k_pos, causal, window)


def attention_reference(q, k, v, causal: bool = True, window: int | None = None, scale: float | None = None):
    """softmax(q k^T * scale + mask) v with explicit scores, computed in float32 (float64 for float64 inputs).

    scale defaults to 1/sqrt(D). Returns a tensor of q's dtype and shape (B, Hq, Tq, D).
    Exercise twin: ex00.causal_gqa_attention (solutions/ex00_foundations.py writes it by hand).
    """
    hq, hkv, tq, tk, d = q.shape[1], k.shape[1], q.shape[2], k.shape[2], q.shape[3]
    scale = d**-0.5 if scale is None else scale
    acc = torch.float64 if q.dtype == torch.float64 else torch.float32
    group = hq // hkv  # query head h reads kv head h // group
    k = k.to(acc).repeat_interleave(group, dim=1)
    v = v.to(acc).repeat_interleave(group, dim=1)
    scores = (q.to(acc) @ k.transpose(-1, -2)) * scale  # (B, Hq, Tq, Tk)
    mask = attention_mask(tq, tk, causal, window, device=q.device)
    scores = scores.masked_fill(~mask, float("-inf"))
    probs = torch.softmax(scores, dim=-1)
    return (probs @ v).to(q.dtype)
