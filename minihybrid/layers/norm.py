"""RMSNorm: y = x / sqrt(mean(x^2) + eps) * weight, computed in float32."""

import torch
import torch.nn.functional as F
from torch import nn

from minihybrid.kernels.dispatch import lazy, needs_grad

_rms_norm_cpu = lazy("minihybrid.kernels.rms_norm_cpu", "rms_norm_cpu")  # imports numba on first use
DECODE_ROWS = 64  # up to here the Numba loop; a prompt's rows go to torch's vectorised rms_norm


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (..., dim) -> (..., dim), same dtype. A few float32 CPU rows without autograd (decoding) take
        one Numba loop (``kernels/rms_norm_cpu.py``) instead of torch's chain of small ops.

        Exercise twin: ex00.rms_norm (solutions/ex00_foundations.py writes it by hand).
        """
        w = self.weight
        if x.dtype == torch.float32:
            if (x.device.type == w.device.type == "cpu" and w.dtype == torch.float32 and x.is_contiguous()
                    and 0 < x.numel() <= DECODE_ROWS * x.shape[-1] and not needs_grad(x, w)):
                return _rms_norm_cpu(x, w, self.eps)
            return F.rms_norm(x, w.shape, w, self.eps)
        return F.rms_norm(x.float(), w.shape, w.float(), self.eps).to(x.dtype)

