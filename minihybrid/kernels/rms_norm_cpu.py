"""RMSNorm rows on the CPU with Numba, for inference: y = x / sqrt(mean(x^2) + eps) * weight.

Shapes: x (..., d) float32, weight (d,) float32, y like x. The specification is ``F.rms_norm`` (what
``layers.norm.RMSNorm`` runs otherwise). On a decode row (d = 576) torch's CPU rms_norm is a chain of about
eight small ops, 60-70 us per call inside a model step; this loop is one call, and SmolLM2 makes 61 per token
(median decode step of the int4 model 37.1 -> 32.8 ms, 7 interleaved runs). Rows are independent, so the
result is batch invariant.
"""

from __future__ import annotations

import numpy as np
import torch
from numba import njit


@njit(fastmath=True, cache=True)
def _rms_norm_kernel(x, weight, eps, out):
    d = x.shape[1]
    for r in range(x.shape[0]):
        s = np.float32(0.0)
        for j in range(d):
            s += x[r, j] * x[r, j]
        inv = np.float32(1.0) / np.sqrt(s / np.float32(d) + np.float32(eps))
        for j in range(d):
            out[r, j] = x[r, j] * inv * weight[j]


def rms_norm_cpu(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """RMSNorm of x (..., d) -> (..., d). No checks: callers validate (contiguous CPU float32 x and weight,
    no autograd)."""
    out = torch.empty_like(x)
    d = x.shape[-1]
    _rms_norm_kernel(x.view(-1, d).numpy(), weight.detach().numpy(), eps, out.view(-1, d).numpy())
    return out
