"""numba.cuda skinny matmul (float32): out = x @ W^T, batch invariant.

Shapes: x (M, K) float32, w (N, K) float32, out (M, N) float32; all contiguous (leading dims of x and out
flattened).

Launch: grid (ceil(N / BLOCK_N), ceil(M / TILE_M)), BLOCK_N threads per block, thread t owning output
n = blockIdx.x * BLOCK_N + t for the block's TILE_M rows of x. K is walked in stages of TILE_K inputs: the
block copies the stage's x tile (TILE_M, TILE_K) and weight tile (BLOCK_N, TILE_K) into shared memory
(consecutive threads reading consecutive inputs of a row, so the reads coalesce; the weight tile gets one
pad column so that threads reading down it hit different banks), then each thread adds w[n, k] * x[m, k]
for its TILE_M rows. Each dot is one thread's sequential sum over k, so out[m, n] does not depend on M or
the other rows (batch invariant). This module imports numba.cuda, so ``__init__.py`` imports it only when
the "cuda" backend runs; with NUMBA_ENABLE_CUDASIM=1 the same kernel runs in numba's simulator on CPU tensors
(see ``kernels/numba_cuda.py``).
"""

from __future__ import annotations

import math

from numba import cuda, float32  # cuda must stay a module global: the simulator swaps it for a fake module

from minihybrid.kernels import numba_cuda

BLOCK_N = 32  # threads per block, one output each
TILE_M = 8  # rows of x per block: a verify step's k tokens fit one block
TILE_K = 32  # inputs staged in shared memory at a time


@cuda.jit
def _kernel(x, w, out):
    xs = cuda.shared.array((TILE_M, TILE_K), float32)
    ws = cuda.shared.array((BLOCK_N, TILE_K + 1), float32)
    acc = cuda.local.array(TILE_M, float32)
    rows, k_total = x.shape
    n_total = w.shape[0]
    t = cuda.threadIdx.x
    n0 = cuda.blockIdx.x * BLOCK_N
    m0 = cuda.blockIdx.y * TILE_M
    for r in range(TILE_M):
        acc[r] = float32(0.0)
    for k0 in range(0, k_total, TILE_K):
        for i in range(t, TILE_M * TILE_K, BLOCK_N):
            r, c = i // TILE_K, i % TILE_K
            inside = m0 + r < rows and k0 + c < k_total
            xs[r, c] = x[m0 + r, k0 + c] if inside else float32(0.0)
        for i in range(t, BLOCK_N * TILE_K, BLOCK_N):
            r, c = i // TILE_K, i % TILE_K
            inside = n0 + r < n_total and k0 + c < k_total
            ws[r, c] = w[n0 + r, k0 + c] if inside else float32(0.0)
        cuda.syncthreads()
        for c in range(min(TILE_K, k_total - k0)):
            wv = ws[t, c]
            for r in range(TILE_M):
                acc[r] += wv * xs[r, c]
        cuda.syncthreads()
    if n0 + t < n_total:
        for r in range(min(TILE_M, rows - m0)):
            out[m0 + r, n0 + t] = acc[r]


def skinny_matmul_cuda(x, w, out):
    """Fill out (..., N) with x (..., K) @ W^T on checked contiguous float32 tensors (CUDA, or CPU under the
    simulator); returns ``out``."""
    x2d = x.detach().reshape(-1, x.shape[-1])
    out2d = out.view(-1, out.shape[-1])
    grid = (math.ceil(w.shape[0] / BLOCK_N), math.ceil(x2d.shape[0] / TILE_M))
    numba_cuda.launch(_kernel, grid, BLOCK_N, (x2d, w), (out2d,))
    return out
