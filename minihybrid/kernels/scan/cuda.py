"""numba.cuda scan: a thread block per (batch, head), a thread per state row, B and C tiles in shared memory.

Shapes (glossary in __init__.py): x (batch, T, H, P), dt (batch, T, H), A (H,), B and C (batch, T, G, N),
initial_state and state_out (batch, H, P, N), y_out (batch, T, H, P); contiguous float32.

Launch: grid (H, batch), P threads per block. Thread p keeps row p of its head's state S (P, N) in a local
array (registers) for the whole sequence, so the state never goes back to memory until the end. The block
walks the tokens in tiles of TOKENS_PER_TILE: all threads copy the tile's B and C rows of the head's group
and its decays exp(dt A) into shared memory, then every thread runs the recurrence on its row token by token,
S[p, :] = decay S[p, :] + (dt x[p]) B_t, and writes y[p] = S[p, :] . C_t. Rows are independent (each needs
only its own x[p]), so the threads do not synchronise inside a tile. This module imports numba.cuda, so
``__init__.py`` imports it only when the "cuda" backend runs; with NUMBA_ENABLE_CUDASIM=1 the same kernel runs
in numba's simulator on CPU tensors (see ``kernels/numba_cuda.py``).
"""

from __future__ import annotations

import functools
import math

from numba import cuda, float32  # cuda must stay a module global: the simulator swaps it for a fake module

from minihybrid.kernels import numba_cuda

TOKENS_PER_TILE = 16  # B and C of 16 tokens: 2 * 16 * N * 4 bytes of shared memory (32 KiB at N = 256)


@functools.cache
def _kernel(n: int, tile: int):
    """Compile the kernel for state size ``n``: shared and local array shapes are compile-time constants."""

    @cuda.jit
    def kernel(x, dt, A, B, C, initial_state, y_out, state_out):
        h, b = cuda.blockIdx.x, cuda.blockIdx.y
        p = cuda.threadIdx.x
        threads = cuda.blockDim.x  # = P
        length, heads = x.shape[1], x.shape[2]
        g = h // (heads // B.shape[2])
        b_tile = cuda.shared.array((tile, n), float32)
        c_tile = cuda.shared.array((tile, n), float32)
        dt_tile = cuda.shared.array(tile, float32)
        decay_tile = cuda.shared.array(tile, float32)
        row = cuda.local.array(n, float32)  # S[p, :]

        for j in range(n):
            row[j] = initial_state[b, h, p, j]
        for t0 in range(0, length, tile):
            nt = min(tile, length - t0)
            cuda.syncthreads()  # everyone is done with the previous tile
            for idx in range(p, nt * n, threads):
                i, j = idx // n, idx % n
                b_tile[i, j] = B[b, t0 + i, g, j]
                c_tile[i, j] = C[b, t0 + i, g, j]
            for i in range(p, nt, threads):
                dt_tile[i] = dt[b, t0 + i, h]
                decay_tile[i] = math.exp(dt_tile[i] * A[h])
            cuda.syncthreads()
            for i in range(nt):
                decay = decay_tile[i]
                xdt = dt_tile[i] * x[b, t0 + i, h, p]
                acc = float32(0.0)
                for j in range(n):
                    s = decay * row[j] + xdt * b_tile[i, j]
                    row[j] = s
                    acc += s * c_tile[i, j]
                y_out[b, t0 + i, h, p] = acc
        for j in range(n):
            state_out[b, h, p, j] = row[j]

    return kernel


def ssd_cuda(x, dt, A, B, C, initial_state, y_out, state_out, tile=TOKENS_PER_TILE):
    """Run the kernel on checked contiguous float32 tensors (CUDA, or CPU under the simulator); fills and
    returns ``y_out`` and ``state_out``."""
    batch, _, heads, p = x.shape
    numba_cuda.launch(_kernel(B.shape[-1], tile), (heads, batch), p, (x, dt, A, B, C, initial_state),
                      (y_out, state_out))
    return y_out, state_out
