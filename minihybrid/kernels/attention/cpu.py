"""Numba CPU attention: tiled online softmax (FlashAttention-2 style), parallel over query tiles.

Shapes: q (B, Hq, Tq, D), k and v (B, Hkv, Tk, D), out (B, Hq, Tq, D); all C-contiguous, one float dtype.
Query i sits at absolute position Tk - Tq + i (queries aligned to the end of the keys).

Each (batch, head, query tile) is one parallel task. It walks the key tiles its rows can see, keeping per row
a running max ``m`` and denominator ``l``: a new tile's scores S = Q K^T raise the max to m', the accumulator
and ``l`` are rescaled by exp(m - m'), and exp(S - m') @ V is added; the output is acc / l at the end.
The two matmuls per tile go to BLAS through ``np.dot`` (single-threaded: ``numba_cpu.run``); the exponentials
use a vectorizable float32 exp. Inputs are not checked here: ``__init__.py`` validates them first.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from minihybrid.kernels import numba_cpu

BLOCK_Q = 128
BLOCK_K = 128
_LOG2E = 1.4426950408889634
_LN2_HI = 0.693359375  # ln 2 split in two for an exact range reduction (Cody-Waite)
_LN2_LO = -2.12194440e-4
_EXP_MIN = -86.0  # clamp so that 2^n and the result stay normal float32 numbers (exp(-86) ~ 4e-38)


@njit(cache=True, fastmath={"nnan", "nsz", "reassoc"})
def _row_max(seg):
    """Max of a non-empty row of finite scores (fast-math lets the reduction vectorize)."""
    best = seg[0]
    for c in range(seg.shape[0]):
        best = max(best, seg[c])
    return best


@njit(cache=True, fastmath={"contract"})
def _exp_poly(seg, m, bits):
    """seg[c] <- exp(seg[c] - m) as poly(r) times 2^n, the float32 bit pattern of 2^n stored in bits[c].

    exp(x) = 2^n e^r with n = round(x / ln2) and r = x - n ln2 computed exactly in two steps (Cody-Waite);
    e^r on |r| <= ln2 / 2 is the Cephes expf polynomial (~1 ulp). Written this way the loop vectorizes.
    """
    f32 = np.float32
    for c in range(seg.shape[0]):
        x = max(seg[c] - m, f32(_EXP_MIN))
        n = np.floor(x * f32(_LOG2E) + f32(0.5))
        r = x - n * f32(_LN2_HI) - n * f32(_LN2_LO)
        p = f32(1.9875691500e-4)
        p = p * r + f32(1.3981999507e-3)
        p = p * r + f32(8.3334519073e-3)
        p = p * r + f32(4.1665795894e-2)
        p = p * r + f32(1.6666665459e-1)
        p = p * r + f32(5.0000001201e-1)
        seg[c] = p * r * r + r + f32(1.0)
        bits[c] = (np.int32(n) + np.int32(127)) << np.int32(23)  # exponent field of 2^n


@njit(cache=True, fastmath={"reassoc", "contract"})
def _scale_and_sum(seg, bits):
    """seg *= 2^n (bits reinterpreted as float32); returns the sum of seg."""
    two_n = bits.view(np.float32)
    total = np.float32(0.0)
    for c in range(seg.shape[0]):
        seg[c] *= two_n[c]
        total += seg[c]
    return total


@njit(cache=True)
def _exp_row(row, m, a, e, bits, exact):
    """row[c] <- exp(row[c] - m) for a <= c < e and 0 elsewhere; returns the row sum.

    ``exact`` (float64) uses math.exp; float32 uses the vectorizable exp above with ``bits`` as scratch.
    Loops run over the slice row[a:e] so Numba knows the indices are non-negative (and can vectorize).
    """
    row[:a] = 0.0
    row[e:] = 0.0
    seg = row[a:e]
    if exact:
        total = 0.0
        for c in range(seg.shape[0]):
            seg[c] = math.exp(seg[c] - m)
            total += seg[c]
        return total
    _exp_poly(seg, m, bits[: e - a])
    return _scale_and_sum(seg, bits[: e - a])


@njit(cache=True)
def _attend_tile(q_tile, kk, vv, out_tile, p0, causal, window, scale, block_k):
    """One query tile: q_tile (nq, D) at positions p0.., kk/vv (Tk, D) of its kv head -> out_tile (nq, D)."""
    nq, d = q_tile.shape
    dtype = q_tile.dtype
    exact = q_tile.itemsize != 4  # float64: use math.exp
    qs = np.empty((nq, d), dtype)  # pre-scaled queries
    for r in range(nq):
        for c in range(d):
            qs[r, c] = q_tile[r, c] * scale
    s_buf = np.empty(nq * block_k, dtype)
    bits = np.empty(block_k, np.int32)
    pv = np.empty((nq, d), dtype)
    acc = np.zeros((nq, d), dtype)
    m = np.full(nq, -np.inf, dtype)
    l = np.zeros(nq, dtype)
    # Row r (position p = p0 + r) sees keys j with p - window < j (if window > 0) and j <= p (if causal).
    k_start = max(0, p0 - window + 1) if window > 0 else 0
    k_stop = p0 + nq if causal else kk.shape[0]
    for j0 in range(k_start, k_stop, block_k):
        nk = min(block_k, k_stop - j0)
        s = s_buf[: nq * nk].reshape((nq, nk))
        np.dot(qs, kk[j0 : j0 + nk].T, s)  # (nq, nk) scores
        for r in range(nq):
            a = max(0, p0 + r - window + 1 - j0) if window > 0 else 0
            e = min(nk, p0 + r + 1 - j0) if causal else nk
            if a >= e:  # this row sees no key of the tile
                s[r, :] = 0.0
                continue
            m_new = max(m[r], _row_max(s[r, a:e]))
            alpha = math.exp(m[r] - m_new)  # rescales what earlier tiles accumulated
            l[r] = l[r] * alpha + _exp_row(s[r], m_new, a, e, bits, exact)
            m[r] = m_new
            for c in range(d):
                acc[r, c] *= alpha
        np.dot(s, vv[j0 : j0 + nk], pv)  # (nq, D)
        for r in range(nq):
            for c in range(d):
                acc[r, c] += pv[r, c]
    for r in range(nq):
        inv = 1.0 / l[r]
        for c in range(d):
            out_tile[r, c] = acc[r, c] * inv


@njit(parallel=True, cache=True)
def _attention_kernel(q, k, v, out, causal, window, scale, block_q, block_k):
    """Write attention(q, k, v) into ``out``; one parallel task per (batch, head, query tile)."""
    batch, hq, tq, _ = q.shape
    group = hq // k.shape[1]  # query head h reads kv head h // group
    offset = k.shape[2] - tq
    n_qt = (tq + block_q - 1) // block_q
    for item in prange(batch * hq * n_qt):
        bh, t = divmod(np.int64(item), n_qt)  # prange indices may be unsigned
        b, h = divmod(bh, hq)
        # zig-zag order 0, n-1, 1, n-2, ...: causal tiles grow with qt, so this balances contiguous chunks
        qt = t // 2 if t % 2 == 0 else n_qt - 1 - t // 2
        i0 = qt * block_q
        i1 = min(i0 + block_q, tq)
        _attend_tile(q[b, h, i0:i1], k[b, h // group], v[b, h // group], out[b, h, i0:i1],
                     offset + i0, causal, window, scale, block_k)


def attention_cpu(q, k, v, out, causal=True, window=None, scale=None, block_q=BLOCK_Q, block_k=BLOCK_K):
    """Numba attention on checked contiguous CPU tensors (float32/float64); fills and returns ``out``."""
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    numba_cpu.run(_attention_kernel, q, k, v, out, causal, 0 if window is None else window, scale, block_q,
                  block_k)
    return out
