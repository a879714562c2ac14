"""SwiGLU feed-forward: down(silu(gate(x)) * up(x))."""

import torch
import torch.nn.functional as F
from torch import nn

from minihybrid.layers.projections import project


class SwiGLU(nn.Module):
    FUSABLE = (("gate", "up"),)  # linears reading one input (layers/projections.py)

    def __init__(self, d_model: int, d_ff: int):
        super().__init__()
        self.gate = nn.Linear(d_model, d_ff, bias=False)
        self.up = nn.Linear(d_model, d_ff, bias=False)
        self.down = nn.Linear(d_ff, d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, T, d_model) -> (B, T, d_model)."""
        gate, up = project(x, (self.gate, self.up))
        return self.down(F.silu(gate) * up)
