"""numba.cuda block-sparse attention: each thread walks its own row's listed key blocks (float32).

Shapes: q (B, Hq, Tq, D), k and v (B, Hkv, Tk, D), blocks (B, Hkv, Tq, S) int32 (-1 = none),
out (B, Hq, Tq, D); all contiguous. Query i sits at absolute position p = Tk - Tq + i; query head h reads kv
head h // G (G = Hq // Hkv) and that kv head's block list for row i.

Launch: one thread block per (query tile, query head, batch) = grid (ceil(Tq / BLOCK_Q), Hq, B), one thread
per query row. Rows of a tile list different blocks, so nothing is shared: each thread keeps its scaled query
row and accumulator in local arrays and, for each listed block (skipping -1 and any block listed earlier in
the row, so the union counts once), reads the block's keys up to p straight from global memory and folds them
into an online softmax: a key scoring above the running max m rescales the denominator l and the accumulator
by exp(m_old - m), then every key adds exp(s - m) to l and exp(s - m) * v to the accumulator. A row that sees
no key keeps l = 0 and writes zeros. This module imports numba.cuda, so ``__init__.py`` imports it only when
the "cuda" backend runs; with NUMBA_ENABLE_CUDASIM=1 the same kernel runs in numba's simulator on CPU tensors
(see ``kernels/numba_cuda.py``).
"""

from __future__ import annotations

import functools
import math

import numpy as np
from numba import cuda, float32  # cuda must stay a module global: the simulator swaps it for a fake module

from minihybrid.kernels import numba_cuda

BLOCK_Q = 32  # threads per block, one query row each


@functools.cache
def _kernel(d: int, block_q: int):
    """Compile the kernel for head dim ``d``: local array shapes must be compile-time constants."""

    @cuda.jit
    def kernel(q, k, v, blocks, out, block_size, scale):
        qt, h, b = cuda.blockIdx.x, cuda.blockIdx.y, cuda.blockIdx.z
        i = qt * block_q + cuda.threadIdx.x
        hq, tq, tk = q.shape[1], q.shape[2], k.shape[2]
        if i >= tq:  # no syncthreads below, so threads past Tq can leave
            return
        kv_head = h // (hq // k.shape[1])
        n_listed = blocks.shape[3]
        q_row = cuda.local.array(d, float32)
        acc = cuda.local.array(d, float32)
        for c in range(d):
            q_row[c] = q[b, h, i, c] * scale
            acc[c] = 0.0
        m = float32(-math.inf)
        l = float32(0.0)
        key_stop = tk - tq + i + 1  # causal: keys at positions <= p
        for s_idx in range(n_listed):
            blk = blocks[b, kv_head, i, s_idx]
            if blk < 0:
                continue
            repeated = False
            for prev in range(s_idx):
                if blocks[b, kv_head, i, prev] == blk:
                    repeated = True
                    break
            if repeated:  # the union of the listed blocks: a block listed twice counts once
                continue
            j0 = blk * block_size
            j1 = min(j0 + block_size, key_stop)  # key_stop <= Tk also cuts the last, partial block
            for j in range(j0, j1):
                s = float32(0.0)
                for c in range(d):
                    s += q_row[c] * k[b, kv_head, j, c]
                if s > m:  # new running max: rescale what was summed so far (exp(-inf) = 0 the first time)
                    alpha = math.exp(m - s)
                    l *= alpha
                    for c in range(d):
                        acc[c] *= alpha
                    m = s
                pj = math.exp(s - m)
                l += pj
                for c in range(d):
                    acc[c] += pj * v[b, kv_head, j, c]
        inv = float32(1.0) / l if l > 0 else float32(0.0)  # a row that saw no key outputs zeros
        for c in range(d):
            out[b, h, i, c] = acc[c] * inv

    return kernel


def block_sparse_cuda(q, k, v, blocks, out, block_size, scale=None, block_q=BLOCK_Q):
    """Run the kernel on checked contiguous float32 tensors and int32 blocks (CUDA, or CPU under the
    simulator); fills and returns ``out``."""
    batch, hq, tq, d = q.shape
    scale = np.float32(d**-0.5 if scale is None else scale)
    grid = (math.ceil(tq / block_q), hq, batch)
    numba_cuda.launch(_kernel(d, block_q), grid, block_q, (q, k, v, blocks), (out,), block_size, scale)
    return out
