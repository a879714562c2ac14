"""Rotary position embeddings in the rotate-half layout (as in Llama / HF transformers).

For head dim D, pair i < D/2 rotates (x[i], x[i + D/2]) by the angle pos * base**(-2i/D).
"""

import torch
from torch import nn


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


class Rotary(nn.Module):
    """`forward(x, start_pos)` rotates x: (B, H, T, D) whose tokens sit at positions start_pos .. start_pos+T-1."""

    def __init__(self, head_dim: int, base: float = 10000.0):
        super().__init__()
        inv_freq = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def forward(self, x: torch.Tensor, start_pos: int = 0) -> torch.Tensor:
        positions = torch.arange(start_pos, start_pos + x.shape[-2], device=x.device, dtype=torch.float32)
        angles = torch.outer(positions, self.inv_freq)
        angles = torch.cat((angles, angles), dim=-1)
        return x * angles.cos().to(x.dtype) + rotate_half(x) * angles.sin().to(x.dtype)
