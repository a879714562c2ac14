"""Linear layers for CPU decoding: a few rows of x through the batch-invariant skinny matmul kernel.

Decoding multiplies one row per token (k rows in a speculative verify step, module 04) by every weight
matrix, so a step's time is reading the weights. torch's float32 ``F.linear`` of one row reads them at about
13 GB/s on the course's 2-core machine (AMD EPYC, Zen 3), and 2..9 rows cost it about twice one row;
``kernels/skinny_matmul`` reads each weight row once for all rows. Milliseconds for SmolLM2-135M's 211 weight
matrices (538 MB, more than the caches hold), medians of 7 interleaved repeats, 2 threads,
OMP_WAIT_POLICY=PASSIVE:

    rows M                  1      2      3      5      9     16     32     48     64     96
    torch F.linear       42.3   76.9  100.1   81.0   90.0   90.7  114.4  142.0  161.8  218.0
    skinny_matmul        27.8   28.2   30.9   34.4   42.4   55.3   86.1  118.0  151.2  217.6

(48, 64 and 96 rows from a second run; both runs before the kernel grouped x rows, which makes 4 or more
rows faster still.) MAX_ROWS = 48 keeps the kernel where it clearly wins. Greedy SmolLM2 decoding with every
linear swapped went from 17.5 to 22.5 tokens/s, with the same tokens.

The kernel is batch invariant: row m of the output is bitwise the same whatever the other rows are, so a
verify pass over k tokens computes exactly the linears of k single-token steps. The rest of a cached step is
batch invariant too (the RMSNorm loop, the fused decode attention, elementwise ops), so with every linear
swapped the verify pass returns bitwise the logits of k single-token steps.

Glossary: M rows of x (leading dims flattened), K in_features, N out_features.

    model = use_skinny_linears(load_smollm2()[0])   # every nn.Linear becomes a SkinnyLinear, in place
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from minihybrid.compress.modules import linear_names, set_module
from minihybrid.kernels.dispatch import needs_grad
from minihybrid.kernels.skinny_matmul.cpu import skinny_matmul_cpu

MAX_ROWS = 48  # kernel vs F.linear over the SmolLM2 shapes: 1.17x faster at 48 rows, 1.07x at 64, 0.99x at 96


class SkinnyLinear(nn.Linear):
    """An nn.Linear whose inference on at most MAX_ROWS float32 CPU rows runs the skinny matmul kernel.

    Built from an nn.Linear, it holds the same weight and bias Parameters (nothing is copied: a head tied
    to the embedding stays tied, and training updates both). Anything else (autograd, more rows, other
    dtypes or devices, non-contiguous x) goes to ``F.linear``, so it trains and moves like an nn.Linear.
    """

    def __init__(self, linear: nn.Linear):
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"SkinnyLinear wraps an nn.Linear, got {type(linear).__name__}")
        super().__init__(linear.in_features, linear.out_features, bias=linear.bias is not None, device="meta")
        self.weight = linear.weight
        self.bias = linear.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (..., K) -> (..., N)."""
        if not self._runs_kernel(x):
            return F.linear(x, self.weight, self.bias)
        out = skinny_matmul_cpu(x, self.weight, x.new_empty(*x.shape[:-1], self.out_features))
        return out if self.bias is None else out.add_(self.bias)

    def _runs_kernel(self, x: torch.Tensor) -> bool:
        """True for contiguous float32 CPU x (..., K) of 1..MAX_ROWS rows with autograd off (the kernel's
        checks, made here because decoding makes about 200 of these calls per token)."""
        w = self.weight
        params = (w,) if self.bias is None else (w, self.bias)
        return (x.dtype == w.dtype == torch.float32 and x.device.type == w.device.type == "cpu"
                and x.dim() > 0 and x.shape[-1] == self.in_features
                and 0 < x.numel() <= MAX_ROWS * self.in_features
                and x.is_contiguous() and w.is_contiguous() and not needs_grad(x, *params))

def use_skinny_linears(model: nn.Module) -> nn.Module:
    """Swap every nn.Linear of the model (a HybridLM's projections, FFNs and head) for a SkinnyLinear sharing
    its parameters, in place; returns the model. Linears already swapped are left as they are."""
    for name in linear_names(model):
        linear = model.get_submodule(name)
        if not isinstance(linear, SkinnyLinear):
            set_module(model, name, SkinnyLinear(linear))
    return model
