"""Speed of the scan backends at one sequence length, measured the one way (`minihybrid.timing`).

benchmarks/bench_scan.py calls `time_backends`; the kernel tests build their inputs with `make_inputs`, so
both see the same realistic value ranges. Inputs: `heads` heads of dim `head_dim`, one B/C group by default,
state size `d_state`, seeded.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from minihybrid.kernels.scan import ssd_scan
from minihybrid.timing import Timing, compare

HEADS, HEAD_DIM, D_STATE = 8, 64, 64
REFERENCE_MAX_LENGTH = 4096  # the token-by-token reference takes ~0.5 s at 4096 tokens on 2 cores


def make_inputs(length: int, batch: int = 1, heads: int = HEADS, head_dim: int = HEAD_DIM, groups: int = 1,
                d_state: int = D_STATE, dtype=torch.float32, seed: int = 0,
                device="cpu") -> list[torch.Tensor]:
    """Seeded [x, dt, A, B, C] (shapes in scan/__init__.py) in the ranges of a Mamba-2 layer at init.

    dt = softplus(N(-4.6, 1)), mostly 1e-3..0.1 (softplus(-4.6) = 0.01); A = -U(1, 16) (Mamba-2's A_log init);
    x, B and C standard normal. Drawn in float64 on the CPU, then cast and moved.
    """
    g = torch.Generator().manual_seed(seed)
    f64 = torch.float64
    x = torch.randn(batch, length, heads, head_dim, generator=g, dtype=f64)
    dt = F.softplus(torch.randn(batch, length, heads, generator=g, dtype=f64) - 4.6)
    A = -torch.empty(heads, dtype=f64).uniform_(1, 16, generator=g)
    B, C = (torch.randn(batch, length, groups, d_state, generator=g, dtype=f64) for _ in range(2))
    return [t.to(dtype=dtype, device=device) for t in (x, dt, A, B, C)]


def time_backends(length: int, backends=("reference", "torch", "numba"), repeats: int = 5, heads: int = HEADS,
                  head_dim: int = HEAD_DIM, d_state: int = D_STATE, chunk_size: int = 64, seed: int = 0,
                  reference_max_length: int = REFERENCE_MAX_LENGTH,
                  device="cpu") -> tuple[dict[str, Timing], float]:
    """Timings per backend at `length` tokens, batch 1, float32 (interleaved, after a warm-up), and the
    largest |difference| between any backend's y or final state and the first one's (checked before timing).

    "reference" is left out above `reference_max_length` tokens (it is a Python loop over the tokens).
    """
    inputs = make_inputs(length, heads=heads, head_dim=head_dim, d_state=d_state, seed=seed, device=device)
    fns = {b: functools.partial(ssd_scan, *inputs, chunk_size=chunk_size, backend=b) for b in backends
           if b != "reference" or length <= reference_max_length}
    outputs = [fn() for fn in fns.values()]
    diff = max((got - expected).abs().max().item()
               for out in outputs for got, expected in zip(out, outputs[0]))  # y, then the final state
    return compare(fns, repeats=repeats, device=device), diff
