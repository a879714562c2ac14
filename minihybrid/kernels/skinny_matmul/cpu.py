"""Numba CPU skinny matmul (float32, inference only): out = x @ W^T, reading each weight row once.

Shapes: x (M, K) float32, w (N, K) float32, out (M, N) float32; all C-contiguous (leading dims of x and out
are flattened).

A parallel loop over tiles of TILE_N weight rows; per tile, every x row in turn runs ``_tile``, one pass over
K that keeps TILE_N dot products in flight (``dot_tile``, also used by kernels/quant_matmul/cpu.py). The
first x row reads the tile's weight rows from memory, the others from cache, so M rows cost one read of W
and M passes of arithmetic. The last tile repeats W's last row in its empty slots and does not write them.

Batch invariance: out[m, n] comes from the one compiled ``_tile`` loop, given x[m] and the weight rows of n's
tile and nothing else, summed in the order that loop fixes (fastmath lets LLVM split the sum into vector
lanes, the same split on every call). M and the other rows of x never enter it, so each output row is
bitwise the same for any M (tests/kernels/test_skinny_matmul.py checks it). Blocking several x rows per
weight load (2x4, 3x3, 4x2 tiles, padded groups of rows) measured no faster over SmolLM2's shapes and would
make invariance rest on LLVM treating every row slot alike; so one x row per tile. Only "reassoc" and
"contract" are enabled, so NaN and inf propagate as in IEEE arithmetic.
"""

from __future__ import annotations

import numpy as np
import torch
from numba import njit, prange

TILE_N = 8  # weight rows per tile: 8 vector accumulators for Zen 3 / AVX2's 2 FMA units of 4-cycle latency
FASTMATH = {"reassoc", "contract"}


@njit(fastmath=FASTMATH, cache=True, inline="always")
def dot_tile(xr, w, r0, last):
    """The 8 dot products of x row xr (K,) with rows r0..r0 + 7 of w (N, K), rows past ``last`` repeating
    row ``last``: TILE_N vector accumulators fed by one load of x each step."""
    w0, w1, w2, w3 = w[r0], w[min(r0 + 1, last)], w[min(r0 + 2, last)], w[min(r0 + 3, last)]
    w4, w5, w6, w7 = w[min(r0 + 4, last)], w[min(r0 + 5, last)], w[min(r0 + 6, last)], w[min(r0 + 7, last)]
    a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = np.float32(0.0)
    for j in range(xr.shape[0]):
        v = xr[j]
        a0 += w0[j] * v
        a1 += w1[j] * v
        a2 += w2[j] * v
        a3 += w3[j] * v
        a4 += w4[j] * v
        a5 += w5[j] * v
        a6 += w6[j] * v
        a7 += w7[j] * v
    return a0, a1, a2, a3, a4, a5, a6, a7


@njit(fastmath=FASTMATH, cache=True, inline="always")
def _tile(xr, w, out, m, n0):
    """out[m, n0:n0 + 8] = W[n0:n0 + 8] @ x row xr; slots past N are not written."""
    last = w.shape[0] - 1
    a = dot_tile(xr, w, n0, last)
    for i in range(min(TILE_N, last + 1 - n0)):
        out[m, n0 + i] = a[i]


@njit(parallel=True, fastmath=FASTMATH, cache=True)
def _kernel(x, w, out):
    for t in prange((w.shape[0] + TILE_N - 1) // TILE_N):
        for m in range(x.shape[0]):
            _tile(x[m], w, out, m, t * TILE_N)


def skinny_matmul_cpu(x: torch.Tensor, w: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """Fill out (..., N) with x (..., K) @ W^T and return it. No checks: callers validate (contiguous CPU
    float32 x, w and out, no autograd)."""
    _kernel(x.detach().view(-1, x.shape[-1]).numpy(), w.detach().numpy(), out.view(-1, out.shape[-1]).numpy())
    return out
