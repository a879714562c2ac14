"""numba.cuda attention: tiled online softmax with K/V tiles staged in shared memory (float32).

Shapes: q (B, Hq, Tq, D), k and v (B, Hkv, Tk, D), out (B, Hq, Tq, D); contiguous float32.
Query i sits at absolute position Tk - Tq + i (queries aligned to the end of the keys).

Launch: one thread block per (query tile, query head, batch) = grid (ceil(Tq / BLOCK_Q), Hq, B), one thread
per query row. The block walks the key tiles its rows can see; for each, all threads copy BLOCK_K keys and
values into shared memory, then every thread scores its row against them, raises its running max m,
rescales its denominator l and accumulator, and adds exp(s - m) * v. This module imports numba.cuda, so
``__init__.py`` imports it only when the "cuda" backend runs; with NUMBA_ENABLE_CUDASIM=1 the same kernel runs
in numba's simulator on CPU tensors (see ``kernels/numba_cuda.py``).
"""

from __future__ import annotations

import functools
import math

import numpy as np
from numba import cuda, float32  # cuda must stay a module global: the simulator swaps it for a fake module

from minihybrid.kernels import numba_cuda

BLOCK_Q = 32  # threads per block, one query row each
BLOCK_K = 32  # keys per shared-memory tile


@functools.cache
def _kernel(d: int, block_q: int, block_k: int):
    """Compile the kernel for head dim ``d``: shared and local array shapes must be compile-time constants."""

    @cuda.jit
    def kernel(q, k, v, out, causal, window, scale):
        qt, h, b = cuda.blockIdx.x, cuda.blockIdx.y, cuda.blockIdx.z
        tid = cuda.threadIdx.x
        hq, tq, tk = q.shape[1], q.shape[2], k.shape[2]
        kv_head = h // (hq // k.shape[1])
        k_tile = cuda.shared.array((block_k, d), float32)
        v_tile = cuda.shared.array((block_k, d), float32)
        q_row = cuda.local.array(d, float32)
        acc = cuda.local.array(d, float32)
        scores = cuda.local.array(block_k, float32)

        i0 = qt * block_q
        i = i0 + tid
        active = i < tq  # threads past Tq still help load tiles
        p = tk - tq + i  # this row's absolute position
        if active:
            for c in range(d):
                q_row[c] = q[b, h, i, c] * scale
                acc[c] = 0.0
        m = float32(-math.inf)
        l = float32(0.0)
        # Keys seen by any row of the block (the same loop bounds for every thread, so syncthreads is safe).
        p_first = tk - tq + i0
        p_last = tk - tq + min(i0 + block_q, tq) - 1
        k_start = max(0, p_first - window + 1) if window > 0 else 0
        k_stop = p_last + 1 if causal else tk
        for j0 in range(k_start, k_stop, block_k):
            nk = min(block_k, k_stop - j0)
            cuda.syncthreads()  # everyone is done with the previous tile
            for idx in range(tid, nk * d, block_q):
                r, c = idx // d, idx % d
                k_tile[r, c] = k[b, kv_head, j0 + r, c]
                v_tile[r, c] = v[b, kv_head, j0 + r, c]
            cuda.syncthreads()
            if not active:
                continue
            lo = max(0, p - window + 1 - j0) if window > 0 else 0
            hi = min(nk, p + 1 - j0) if causal else nk
            if lo >= hi:
                continue
            tile_max = float32(-math.inf)
            for j in range(lo, hi):
                s = float32(0.0)
                for c in range(d):
                    s += q_row[c] * k_tile[j, c]
                scores[j] = s
                tile_max = max(tile_max, s)
            m_new = max(m, tile_max)
            alpha = math.exp(m - m_new)
            l *= alpha
            for c in range(d):
                acc[c] *= alpha
            for j in range(lo, hi):
                pj = math.exp(scores[j] - m_new)
                l += pj
                for c in range(d):
                    acc[c] += pj * v_tile[j, c]
            m = m_new
        if active:
            for c in range(d):
                out[b, h, i, c] = acc[c] / l

    return kernel


def attention_cuda(q, k, v, out, causal=True, window=None, scale=None, block_q=BLOCK_Q, block_k=BLOCK_K):
    """Run the kernel on checked contiguous float32 tensors (CUDA, or CPU under the simulator); fills and
    returns ``out``."""
    batch, hq, tq, d = q.shape
    scale = np.float32(d**-0.5 if scale is None else scale)
    grid = (math.ceil(tq / block_q), hq, batch)
    numba_cuda.launch(_kernel(d, block_q, block_k), grid, block_q, (q, k, v), (out,), causal,
                      0 if window is None else window, scale)
    return out
