"""Reference block-sparse attention: dense attention under the block mask, the specification every fast path
is tested against.

Shapes: q (B, Hq, Tq, D), k and v (B, Hkv, Tk, D), blocks (B, Hkv, Tq, S) int, output (B, Hq, Tq, D).
Query i sits at absolute position Tk - Tq + i (queries aligned to the end of the keys). Row i of blocks lists
the key blocks (tokens [block_size j, block_size (j + 1))) that the G = Hq // Hkv query heads of kv head h
attend to; -1 entries are ignored. One softmax runs over the union of the listed blocks, causal at the token
level (it cuts only the query's own block). A row that lists no visible key outputs zeros.
"""

from __future__ import annotations

import torch


def block_mask(blocks: torch.Tensor, tk: int, block_size: int) -> torch.Tensor:
    """(B, Hkv, Tq, Tk) bool: key j is allowed for query i when its block is listed and j <= Tk - Tq + i."""
    tq = blocks.shape[2]
    n_blocks = -(-tk // block_size)
    listed = torch.zeros(*blocks.shape[:3], n_blocks + 1, dtype=torch.bool, device=blocks.device)
    listed.scatter_(-1, blocks.long().where(blocks >= 0, n_blocks), True)  # -1 -> a spare column
    key_block = torch.arange(tk, device=blocks.device) // block_size
    allowed = listed[..., key_block]  # (B, Hkv, Tq, Tk)
    positions = torch.arange(tk, device=blocks.device)
    causal = positions[None, :] <= positions[tk - tq:, None]
    return allowed & causal


def block_sparse_reference(q, k, v, blocks, block_size: int, scale: float | None = None) -> torch.Tensor:
    """softmax(q k^T * scale + block mask) v with explicit scores, in float32 (float64 for float64 inputs).

    Returns a tensor of q's dtype and shape (B, Hq, Tq, D).
    Exercise twin: ex03.block_sparse_attention (the mask from a (Tq, S, Tk) comparison).
    """
    hq, hkv, tk, d = q.shape[1], k.shape[1], k.shape[2], q.shape[3]
    scale = d**-0.5 if scale is None else scale
    acc = torch.float64 if q.dtype == torch.float64 else torch.float32
    group = hq // hkv
    mask = block_mask(blocks, tk, block_size).repeat_interleave(group, dim=1)  # (B, Hq, Tq, Tk)
    scores = (q.to(acc) @ k.to(acc).repeat_interleave(group, dim=1).transpose(-1, -2)) * scale
    probs = scores.masked_fill(~mask, float("-inf")).softmax(-1).nan_to_num(0.0)  # no key: zeros
    return (probs @ v.to(acc).repeat_interleave(group, dim=1)).to(q.dtype)
