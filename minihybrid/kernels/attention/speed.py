"""Speed of the attention backends at one sequence length, measured the one way (`minihybrid.timing`).

benchmarks/bench_attention.py and notebook 00 both call `time_backends`, so the benchmark's line and the
notebook's plot show the same numbers. Inputs: B = 1, `heads` query and kv heads, head dim `head_dim`,
float32, causal, seeded.
"""

from __future__ import annotations

import functools

import torch

from minihybrid.kernels.attention import attention
from minihybrid.timing import Timing, compare

HEADS, HEAD_DIM = 8, 64


def time_backends(n: int, backends=("torch", "numba"), repeats: int = 7, heads: int = HEADS,
                  head_dim: int = HEAD_DIM, seed: int = 0) -> tuple[dict[str, Timing], float]:
    """Timings per backend at n tokens (interleaved, after a warm-up), and the largest |difference| between
    any backend's output and the first one's (checked before timing)."""
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(1, heads, n, head_dim, generator=g) for _ in range(3))
    fns = {b: functools.partial(attention, q, k, v, causal=True, backend=b) for b in backends}
    outputs = [fn() for fn in fns.values()]
    diff = max((out - outputs[0]).abs().max().item() for out in outputs)
    return compare(fns, repeats=repeats), diff
