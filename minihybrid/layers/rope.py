"""Rotary position embeddings in the rotate-half layout (as in Llama / HF transformers).

For head dim D, pair i < D/2 rotates (x[i], x[i + D/2]) by the angle pos * base**(-2i/D).
"""

import torch
from torch import nn


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


_TABLES: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}  # (head_dim, base, device, dtype) -> (cos, sin)


def rope_tables(head_dim: int, base: float, end: int, device, dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin, each (n, head_dim) with n >= end, shared by every layer with the same head_dim and base.

    Angles are computed in float64 and rounded once; tables grow by doubling. They are built outside
    inference mode, so a table first needed while generating still works in a later training step.

    Exercise twin: ex00.rope_cos_sin (the rows of given positions, computed in float32).
    """
    key = (head_dim, base, torch.device(device), dtype)
    if key not in _TABLES or _TABLES[key][0].shape[0] < end:
        n = max(256, 1 << (end - 1).bit_length())
        inv_freq = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
        with torch.inference_mode(False):
            angles = torch.outer(torch.arange(n, dtype=torch.float64), inv_freq)
            angles = torch.cat((angles, angles), dim=-1)
            _TABLES[key] = (angles.cos().to(device, dtype), angles.sin().to(device, dtype))
    return _TABLES[key]


class Rotary(nn.Module):
    """`forward(q, k, start_pos)` rotates q (B, Hq, T, D) and k (B, Hkv, T, D) at positions start_pos..

    The tables follow q's device and dtype (see `rope_tables`); nothing is stored in the module, so
    `model.to(...)` never rounds the frequencies.
    """

    def __init__(self, head_dim: int, base: float = 10000.0):
        super().__init__()
        self.head_dim, self.base = head_dim, base

    def forward(self, q: torch.Tensor, k: torch.Tensor, start_pos: int = 0):
        """(q, k) rotated by the angles of positions start_pos..start_pos + T - 1.

        Exercise twin: ex00.apply_rope (one tensor, with the cos and sin tables passed in).
        """
        end = start_pos + q.shape[-2]
        cos, sin = rope_tables(self.head_dim, self.base, end, q.device, q.dtype)
        cos, sin = cos[start_pos:end], sin[start_pos:end]
        return q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
