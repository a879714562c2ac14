"""Reference skinny matmul: y = x @ W^T, the specification every fast path is tested against.

Shapes: x (..., K), W (N, K) (an nn.Linear's weight: one row per output), y (..., N).
"""

from __future__ import annotations

import torch


def skinny_matmul_reference(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """x (..., K) @ W^T -> (..., N) in x's dtype (any float dtype, autograd through x and W)."""
    return x @ w.T
