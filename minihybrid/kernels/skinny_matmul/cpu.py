"""Numba CPU skinny matmul (float32, inference only): out = x @ W^T, reading each weight row once.

Shapes: x (M, K) float32, w (N, K) float32, out (M, N) float32; all C-contiguous (leading dims of x and out
are flattened).

One parallel pass over tiles of TILE_N weight rows. Every output is one ``dot8``: a pass over K that keeps 8
dot products in flight (8 vector accumulators fed by one load of the shared row each step). From GROUP_MIN x
rows on, x rows 0..7 run as a group (padded by repeating the last row below 8): ``dot8(w[n], the 8 x rows)``
for each weight row of the tile, so the 8 multiply-adds per weight come as the weight streams in. Rows past
the group run ``dot8(x[m], the tile's 8 weight rows)`` while the tile is still in cache. Over SmolLM2's 211
matrices, 41 interleaved repeats, in one-row passes: 6 rows cost 1.19 grouped against 1.34 one x row at a
time, 9 rows 1.43 against 1.63, 16 rows 2.08 against 2.21; 2 and 3 rows gain nothing.

Slower, measured over the same shapes: 2 x rows by 4 weight rows per loop (one call site, so batch invariant
too; 9 rows 7% slower) and software prefetch of the weight rows 2 to 16 rows ahead (llvm.prefetch into L1 or
L2; 8 rows 12% slower). dot8 over 8 cached rows does about 79 billion multiply-adds per second on the 2 cores,
so 8 rows' arithmetic alone is about 0.7 of a one-row pass: it is the overlap with the weight stream that is
missing, and neither variant brought it.

Batch invariance: out[m, n] is always the ``dot8`` loop over x[m] and w[n], whichever operand it shares and
whichever slot holds it. Each call site inlines the same loop body, which LLVM vectorizes the same way
(the same lanes, summed in the same order), and a product r[j] * s is the same bits either way round. So
each output row is bitwise the same for any M and any place in x (tests/kernels/test_skinny_matmul.py checks
every M from 1 to 17). Only "reassoc" and "contract" are enabled, so NaN and inf propagate as in IEEE
arithmetic.
"""

from __future__ import annotations

import numpy as np
import torch
from numba import njit, prange

TILE_N = 8  # weight rows per tile, x rows per group: 8 accumulators for AVX2's 2 FMA units of 4-cycle latency
FASTMATH = {"reassoc", "contract"}
GROUP_MIN = 4  # from this many x rows, the first 8 run as a group (padded below 8); 2-3 rows gain nothing


@njit(fastmath=FASTMATH, cache=True, inline="always")
def dot8(v, rows8):
    """The 8 dot products of v (K,) with the 8 arrays (K,) of the tuple rows8: 8 vector accumulators fed by
    one load of v each step. The one loop every output of this kernel (and of kernels/quant_matmul/cpu.py) is
    summed by."""
    r0, r1, r2, r3, r4, r5, r6, r7 = rows8
    a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = np.float32(0.0)
    for j in range(v.shape[0]):
        s = v[j]
        a0 += r0[j] * s
        a1 += r1[j] * s
        a2 += r2[j] * s
        a3 += r3[j] * s
        a4 += r4[j] * s
        a5 += r5[j] * s
        a6 += r6[j] * s
        a7 += r7[j] * s
    return a0, a1, a2, a3, a4, a5, a6, a7


@njit(fastmath=FASTMATH, cache=True, inline="always")
def tile_rows(rows, r0, last):
    """Views of rows r0..r0 + 7 of ``rows`` (R, K), slots past ``last`` repeating row ``last``."""
    return (rows[r0], rows[min(r0 + 1, last)], rows[min(r0 + 2, last)], rows[min(r0 + 3, last)],
            rows[min(r0 + 4, last)], rows[min(r0 + 5, last)], rows[min(r0 + 6, last)],
            rows[min(r0 + 7, last)])


@njit(fastmath=FASTMATH, cache=True, inline="always")
def dot_tile(v, rows, r0, last):
    """``dot8`` of v with rows r0..r0 + 7 of ``rows`` (``tile_rows``)."""
    return dot8(v, tile_rows(rows, r0, last))


@njit(fastmath=FASTMATH, cache=True, inline="always")
def _group_pass(w, out, n0, n1, xs):
    """out[:8, n0:n1] (the rows that exist) for the group's x rows xs: each weight row read once for all 8."""
    for n in range(n0, n1):
        a = dot8(w[n], xs)
        for i in range(min(TILE_N, out.shape[0])):
            out[i, n] = a[i]


@njit(parallel=True, fastmath=FASTMATH, cache=True)
def _kernel(x, w, out):
    """out (M, N) = x (M, K) @ W^T in one parallel pass over tiles of TILE_N weight rows."""
    m, n_out = x.shape[0], w.shape[0]
    grouped = min(m, TILE_N) if m >= GROUP_MIN else 0  # x rows 0..7 run as one group
    xs = tile_rows(x, 0, m - 1)  # x rows 0..7: views made once per call, not once per tile
    for t in prange((n_out + TILE_N - 1) // TILE_N):
        n0 = t * TILE_N
        n1 = min(n0 + TILE_N, n_out)
        if grouped:
            _group_pass(w, out, n0, n1, xs)
        for r in range(grouped, m):  # the rest one x row at a time over the tile's (cached) weight rows
            a = dot_tile(x[r], w, n0, n_out - 1)
            for i in range(n1 - n0):
                out[r, n0 + i] = a[i]


def skinny_matmul_cpu(x: torch.Tensor, w: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """Fill out (..., N) with x (..., K) @ W^T and return it. No checks: callers validate (contiguous CPU
    float32 x, w and out, no autograd)."""
    _kernel(x.detach().view(-1, x.shape[-1]).numpy(), w.detach().numpy(), out.view(-1, out.shape[-1]).numpy())
    return out
