"""Numba CPU block selection: select.py's steps 2 and 3 fused, for a whole prefill or one decode step.

Shapes: q (B, Hq, Tq, D), kc (B, Hkv, C, D) compressed keys, out (B, Hkv, Tq, S) int32; contiguous, one
float dtype for q and kc. Query i sits at absolute position p0 + i.

One parallel task per (batch, kv head, tile of BLOCK_Q queries). The task scores its queries' G heads against
the windows its last query can see in one BLAS product, then per query: a softmax over its own visible windows
per head (the vectorised exp of kernels/attention/cpu.py), summed over the group; the max over the windows
overlapping each block; and the choice: the forced blocks, then the `topk` best others by (score, earlier
block first on ties), found with a partial sort of integer keys (a non-negative float's bits order like its
value), as select.select_blocks ranks them. Scores are float32, as in select.py; its tests pin equal choices.
Inputs are checked by ``select.sparse_blocks``.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from minihybrid.kernels import numba_cpu
from minihybrid.kernels.attention.cpu import _exp_row, _row_max

BLOCK_Q = 64
TIE_SPAN = 1 << 24  # as select._TIE_SPAN: more than any number of blocks


@njit(cache=True)
def _visible(p, kernel_size, stride):
    """Windows whose last key is at or before position p."""
    return 0 if p + 1 < kernel_size else (p + 1 - kernel_size) // stride + 1


@njit(cache=True)
def _choose_row(window_scores, n_seen, p, out_row, kernel_size, stride, block_size, init_blocks, window,
                topk):
    """Block scores of one query from its group-summed window scores, then its blocks into out_row."""
    own = p // block_size
    left, per = kernel_size // stride - 1, block_size // stride
    local = own - window // block_size
    scores = np.zeros(own + 1, np.float32)
    for j in range(own + 1):
        for c in range(max(0, j * per - left), min(n_seen, (j + 1) * per)):
            scores[j] = max(scores[j], window_scores[c])
    bits = scores.view(np.int32)
    chosen = np.zeros(own + 1, np.bool_)
    keys = np.empty(own + 1, np.int64)
    n_cand = 0
    for j in range(own + 1):
        chosen[j] = j < init_blocks or j >= local
        keys[j] = np.int64(bits[j]) * TIE_SPAN + (TIE_SPAN - 1 - j)
        if not chosen[j]:
            n_cand += 1
    if topk > 0 and n_cand > 0:
        candidates = np.empty(n_cand, np.int64)
        n = 0
        for j in range(own + 1):
            if not chosen[j]:
                candidates[n] = keys[j]
                n += 1
        cut = np.partition(candidates, max(0, n_cand - topk))[max(0, n_cand - topk)]  # the topk-th largest
        for j in range(own + 1):
            chosen[j] = chosen[j] or keys[j] >= cut
    s = 0
    for j in range(own + 1):
        if chosen[j]:
            out_row[s] = j
            s += 1
    out_row[s:] = -1


@njit(cache=True)
def _select_tile(q, kc, out, b, h, group, i0, i1, p0, scale, kernel_size, stride, block_size, init_blocks,
                 window, topk):
    nq, d = i1 - i0, q.shape[3]
    dtype = q.dtype
    n_windows = min(kc.shape[2], _visible(p0 + i1 - 1, kernel_size, stride))
    rows = nq * group
    qs = np.empty((rows, d), dtype)
    for r in range(nq):
        for g in range(group):
            for c in range(d):
                qs[r * group + g, c] = q[b, h * group + g, i0 + r, c] * scale
    logits = np.empty((rows, max(n_windows, 1)), dtype)
    if n_windows > 0:
        np.dot(qs, kc[b, h, :n_windows].T, logits)
    bits = np.empty(max(n_windows, 1), np.int32)
    window_scores = np.zeros(max(n_windows, 1), np.float32)
    exact = q.itemsize != 4
    for r in range(nq):
        p = p0 + i0 + r
        n_seen = min(n_windows, _visible(p, kernel_size, stride))
        window_scores[:] = 0.0
        if n_seen > 0:
            for g in range(group):
                row = logits[r * group + g]
                total = _exp_row(row, _row_max(row[:n_seen]), 0, n_seen, bits, exact)
                for c in range(n_seen):
                    window_scores[c] += row[c] / total
        _choose_row(window_scores, n_seen, p, out[b, h, i0 + r], kernel_size, stride, block_size, init_blocks,
                    window, topk)


@njit(parallel=True, cache=True)
def _select_kernel(q, kc, out, p0, scale, kernel_size, stride, block_size, init_blocks, window, topk,
                   block_q):
    batch, hq, tq, _ = q.shape
    hkv = kc.shape[1]
    n_qt = (tq + block_q - 1) // block_q
    for item in prange(batch * hkv * n_qt):
        bh, t = divmod(np.int64(item), n_qt)
        b, h = divmod(bh, hkv)
        qt = t // 2 if t % 2 == 0 else n_qt - 1 - t // 2  # zig-zag: later tiles see more windows
        i0 = qt * block_q
        _select_tile(q, kc, out, b, h, hq // hkv, i0, min(i0 + block_q, tq), p0, scale, kernel_size, stride,
                     block_size, init_blocks, window, topk)


def select_cpu(q, kc, out, p0: int, *, kernel_size: int, stride: int, block_size: int, init_blocks: int,
               window: int, topk: int, block_q: int = BLOCK_Q):
    """Fill out (B, Hkv, Tq, S) with the blocks of q's queries (positions p0..) from compressed keys kc."""
    scale = q.shape[-1] ** -0.5
    numba_cpu.run(_select_kernel, q, kc, out, p0, scale, kernel_size, stride, block_size, init_blocks, window,
                  topk, block_q)
    return out
