"""Rotary position embeddings in the rotate-half layout (as in Llama / HF transformers).

For head dim D, pair i < D/2 rotates (x[i], x[i + D/2]) by the angle pos * base**(-2i/D).
"""

import torch
from torch import nn


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


class Rotary(nn.Module):
    """`forward(q, k, start_pos)` rotates q (B, Hq, T, D) and k (B, Hkv, T, D) at positions start_pos..

    The cos/sin tables are computed in float32 for positions 0..n-1 and grown (doubling) on demand, so a
    decode step only slices them. They are plain attributes, not buffers: `model.to(bfloat16)` leaves the
    frequencies in float32, and the tables follow q's device and dtype.
    """

    def __init__(self, head_dim: int, base: float = 10000.0):
        super().__init__()
        self.inv_freq = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
        self._cos = self._sin = torch.empty(0)

    def _tables(self, end: int, like: torch.Tensor):
        if self._cos.shape[0] < end or self._cos.device != like.device or self._cos.dtype != like.dtype:
            n = max(256, 1 << (end - 1).bit_length())
            angles = torch.outer(torch.arange(n, dtype=torch.float64), self.inv_freq).float()
            angles = torch.cat((angles, angles), dim=-1).to(like.device)
            self._cos, self._sin = angles.cos().to(like.dtype), angles.sin().to(like.dtype)
        return self._cos, self._sin

    def forward(self, q: torch.Tensor, k: torch.Tensor, start_pos: int = 0):
        end = start_pos + q.shape[-2]
        cos, sin = self._tables(end, q)
        cos, sin = cos[start_pos:end], sin[start_pos:end]
        return q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
