"""Numba CPU block-sparse attention: reads only the key blocks its queries selected.

Shapes: q (B, Hq, Tq, D), k and v (B, Hkv, Tk, D), blocks (B, Hkv, Tq, S) int32 (-1 = none),
out (B, Hq, Tq, D); all C-contiguous. Query i sits at absolute position Tk - Tq + i.

One parallel task per (batch, kv head, tile of up to BLOCK_Q consecutive queries). The G query heads of the
kv head share each row's block list, so a row is G stacked query vectors. The task walks the union of the
blocks its rows selected, in ascending order; for each block it gathers the rows that selected it (and can see
part of it), scores them against the block's keys in one BLAS product, folds the scores into each row's online
softmax (running max m and denominator l, as in kernels/attention/cpu.py) and adds P V in a second product.
So it computes exactly the selected blocks, with large products for the blocks every row shares (init, local)
and small ones for the rest. A decode step (Tq = 1) is one tile per kv head. Inputs are checked by
``__init__.py``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from minihybrid.kernels import numba_cpu
from minihybrid.kernels.attention.cpu import _exp_row, _row_max

BLOCK_Q = 1024  # queries per task: the more rows, the more of them share each block, the larger the products


@njit(cache=True)
def _mark_blocks(blocks_tile, n_blocks):
    """(used (NB,) bool, picked (NB, nq) bool) from the rows' block lists (nq, S)."""
    nq = blocks_tile.shape[0]
    used = np.zeros(n_blocks, np.bool_)
    picked = np.zeros((n_blocks, nq), np.bool_)
    for r in range(nq):
        for s in range(blocks_tile.shape[1]):
            j = blocks_tile[r, s]
            if j >= 0:
                used[j] = True
                picked[j, r] = True
    return used, picked


@njit(cache=True)
def _attend_tile(q, k, v, out, blocks_tile, b, kv_head, group, i0, p0, scale, block_size):
    """Rows i0.. (positions p0..) of the G heads of kv_head: out[b, heads, i0:i0 + nq] from their blocks."""
    nq, d = blocks_tile.shape[0], q.shape[3]
    tk = k.shape[2]
    dtype = q.dtype
    exact = q.itemsize != 4
    # stacked row r * G + g: query i0 + r of head kv_head * G + g
    qs = np.empty((nq * group, d), dtype)
    for r in range(nq):
        for g in range(group):
            for c in range(d):
                qs[r * group + g, c] = q[b, kv_head * group + g, i0 + r, c] * scale
    acc = np.zeros((nq * group, d), dtype)
    m = np.full(nq * group, -np.inf, dtype)
    l = np.zeros(nq * group, dtype)
    q_buf = np.empty((nq * group, d), dtype)
    s_buf = np.empty(nq * group * block_size, dtype)
    pv_buf = np.empty((nq * group, d), dtype)
    bits = np.empty(block_size, np.int32)
    rows = np.empty(nq, np.int64)
    used, picked = _mark_blocks(blocks_tile, (tk + block_size - 1) // block_size)
    kk, vv = k[b, kv_head], v[b, kv_head]
    for j in range(used.shape[0]):
        j0 = j * block_size
        if not used[j]:
            continue
        n = 0  # the rows that selected block j and see at least its first key
        for r in range(nq):
            if picked[j, r] and p0 + r >= j0:
                rows[n] = r
                n += 1
        if n == 0:
            continue
        nk = min(block_size, tk - j0)
        qg = q_buf[: n * group]
        for a in range(n):
            qg[a * group : (a + 1) * group] = qs[rows[a] * group : (rows[a] + 1) * group]
        s = s_buf[: n * group * nk].reshape((n * group, nk))
        np.dot(qg, kk[j0 : j0 + nk].T, s)
        for a in range(n):
            e = min(nk, p0 + rows[a] + 1 - j0)  # causal: keys up to the row's position
            for g in range(group):
                row, sr = rows[a] * group + g, a * group + g
                m_new = max(m[row], _row_max(s[sr, :e]))
                alpha = math.exp(m[row] - m_new)  # rescales what earlier blocks accumulated
                l[row] = l[row] * alpha + _exp_row(s[sr], m_new, 0, e, bits, exact)
                m[row] = m_new
                for c in range(d):
                    acc[row, c] *= alpha
        pv = pv_buf[: n * group]
        np.dot(s, vv[j0 : j0 + nk], pv)
        for a in range(n):
            for g in range(group):
                row = rows[a] * group + g
                for c in range(d):
                    acc[row, c] += pv[a * group + g, c]
    for r in range(nq):
        for g in range(group):
            row = r * group + g
            inv = 1.0 / l[row] if l[row] > 0 else 0.0  # a row that saw no key outputs zeros
            for c in range(d):
                out[b, kv_head * group + g, i0 + r, c] = acc[row, c] * inv


@njit(parallel=True, cache=True)
def _block_sparse_kernel(q, k, v, blocks, out, scale, block_size, block_q):
    batch, hq, tq, _ = q.shape
    hkv = k.shape[1]
    group = hq // hkv
    offset = k.shape[2] - tq
    n_qt = (tq + block_q - 1) // block_q
    for item in prange(batch * hkv * n_qt):
        bh, t = divmod(np.int64(item), n_qt)
        b, h = divmod(bh, hkv)
        qt = t // 2 if t % 2 == 0 else n_qt - 1 - t // 2  # zig-zag: later tiles see more keys
        i0 = qt * block_q
        i1 = min(i0 + block_q, tq)
        _attend_tile(q, k, v, out, blocks[b, h, i0:i1], b, h, group, i0, offset + i0, scale, block_size)


def block_sparse_cpu(q, k, v, blocks, out, block_size, scale=None, block_q=BLOCK_Q):
    """Numba block-sparse attention on checked contiguous CPU tensors (float32/float64); fills ``out``."""
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    numba_cpu.run(_block_sparse_kernel, q, k, v, blocks, out, scale, block_size, block_q)
    return out
