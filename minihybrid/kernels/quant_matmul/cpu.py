"""Numba CPU quantized matmul over the packed weights of reference.py (float32, inference only).

Shapes: x (M, K) float32, packed (N, K // 2) uint8 for 4 bits or (N, K) for 8 bits, scales and mins
(N, K // group_size) float32, out (M, N) float32; all C-contiguous (leading dims of x and out are flattened).

One row (a decode step) runs ``_gemv_kernel``: a parallel loop over output rows n, one ``_group_dot1`` per
group with no x-row blocking or padding (1.1-1.4x the fused kernel at one row on SmolLM2's shapes).
Up to FUSED_ROWS rows (the k tokens of a speculative verify step) run the fused kernel: a parallel loop over
output rows n reads each weight byte once, unpacks it in float arithmetic and multiplies it into every x
row, four rows at a time (then two, then one). Per group only scales * (codes . x) needs the
weights; mins * sum(x_group) uses the group sums of x, computed once per call. For 4 bits the even/odd inputs
are split once per call and the low nibble never unpacked: with f = byte and h = floor(f / 16) (the high
nibble), lo * x[2c] + h * x[2c+1] = f * x[2c] + h * (x[2c+1] - 16 x[2c]). (Integer unpacking is slower
here: Numba widens small ints to int64, which AVX2 cannot convert to float.) More rows (prefill) dequantize
W into a float32 buffer with a parallel loop and hand it to BLAS (torch.matmul).
"""

from __future__ import annotations

import numpy as np
import torch
from numba import njit, prange

FUSED_ROWS = 8  # fused up to here: at 8 rows it beat dequantize + BLAS on 4 of 5 SmolLM2 shapes, at 16 on 1


@njit(fastmath=True, cache=True)
def _split_x(x, group_size, bits, rows):
    """x (M, K) -> (xe, xq, xs): even inputs (R, K // 2), odd - 16 even (R, K // 2) (for 8 bits xe = xq = x),
    group sums (R, K // group_size); R = rows >= M, the rows past M zero."""
    m, k = x.shape
    xs = np.zeros((rows, k // group_size), np.float32)
    for r in range(m):
        for g in range(k // group_size):
            s = np.float32(0.0)
            for j in range(group_size):
                s += x[r, g * group_size + j]
            xs[r, g] = s
    if bits == 8:
        xe = np.zeros((rows, k), np.float32)
        xe[:m] = x
        return xe, xe, xs
    xe = np.zeros((rows, k // 2), np.float32)
    xq = np.zeros((rows, k // 2), np.float32)
    for r in range(m):
        for c in range(k // 2):
            xe[r, c] = x[r, 2 * c]
            xq[r, c] = x[r, 2 * c + 1] - np.float32(16.0) * x[r, 2 * c]
    return xe, xq, xs


# The group dots below loop over range(width) and add c0: a loop over range(c0, c0 + width) does not
# vectorize in Numba (about 9x slower).
@njit(fastmath=True, cache=True, inline="always")
def _group_dot1(p, e0, q0, c0, width, bits):
    """codes . x over bytes c0..c0 + width of the weight row p, for one x row (e0, q0: see _split_x)."""
    t0 = np.float32(0.0)
    if bits == 8:
        for j in range(width):
            t0 += np.float32(p[c0 + j]) * e0[c0 + j]
        return t0
    for j in range(width):
        f = np.float32(p[c0 + j])
        h = np.floor(f * np.float32(0.0625))
        t0 += f * e0[c0 + j] + h * q0[c0 + j]
    return t0


@njit(fastmath=True, cache=True, inline="always")
def _group_dot2(p, e0, q0, e1, q1, c0, width, bits):
    """_group_dot1 for two x rows, each byte unpacked once."""
    t0 = t1 = np.float32(0.0)
    if bits == 8:
        for j in range(width):
            f = np.float32(p[c0 + j])
            t0 += f * e0[c0 + j]
            t1 += f * e1[c0 + j]
        return t0, t1
    for j in range(width):
        c = c0 + j
        f = np.float32(p[c])
        h = np.floor(f * np.float32(0.0625))
        t0 += f * e0[c] + h * q0[c]
        t1 += f * e1[c] + h * q1[c]
    return t0, t1


@njit(fastmath=True, cache=True, inline="always")
def _group_dot4(p, xe, xq, m0, c0, width, bits):
    """_group_dot1 for the four x rows m0..m0 + 3 of xe, xq, each byte unpacked once."""
    e0, e1, e2, e3 = xe[m0], xe[m0 + 1], xe[m0 + 2], xe[m0 + 3]
    t0 = t1 = t2 = t3 = np.float32(0.0)
    if bits == 8:
        for j in range(width):
            c = c0 + j
            f = np.float32(p[c])
            t0 += f * e0[c]
            t1 += f * e1[c]
            t2 += f * e2[c]
            t3 += f * e3[c]
        return t0, t1, t2, t3
    q0, q1, q2, q3 = xq[m0], xq[m0 + 1], xq[m0 + 2], xq[m0 + 3]
    u0 = u1 = u2 = u3 = np.float32(0.0)  # the high-nibble products: 8 independent sums keep 2 FMAs busy
    for j in range(width):
        c = c0 + j
        f = np.float32(p[c])
        h = np.floor(f * np.float32(0.0625))
        t0 += f * e0[c]
        t1 += f * e1[c]
        t2 += f * e2[c]
        t3 += f * e3[c]
        u0 += h * q0[c]
        u1 += h * q1[c]
        u2 += h * q2[c]
        u3 += h * q3[c]
    t0 += u0
    t1 += u1
    t2 += u2
    t3 += u3
    return t0, t1, t2, t3


@njit(fastmath=True, cache=True)
def _row1(p, xe, xq, xs, scales, mins, out, n, m0, width, bits):
    """out[m0, n] from the weight row p (bytes) and x row m0."""
    a0 = np.float32(0.0)
    for g in range(scales.shape[1]):
        t0 = _group_dot1(p, xe[m0], xq[m0], g * width, width, bits)
        a0 += scales[n, g] * t0 + mins[n, g] * xs[m0, g]
    out[m0, n] = a0


@njit(fastmath=True, cache=True)
def _row2(p, xe, xq, xs, scales, mins, out, n, m0, width, bits):
    """out[m0:m0 + 2, n]."""
    a0 = a1 = np.float32(0.0)
    for g in range(scales.shape[1]):
        t0, t1 = _group_dot2(p, xe[m0], xq[m0], xe[m0 + 1], xq[m0 + 1], g * width, width, bits)
        s, b = scales[n, g], mins[n, g]
        a0 += s * t0 + b * xs[m0, g]
        a1 += s * t1 + b * xs[m0 + 1, g]
    out[m0, n] = a0
    out[m0 + 1, n] = a1


@njit(fastmath=True, cache=True)
def _row4(p, xe, xq, xs, scales, mins, out, n, m0, width, bits):
    """out[m0:m0 + 4, n], the rows that exist (a block of 3 computes a zero fourth row, not written)."""
    a0 = a1 = a2 = a3 = np.float32(0.0)
    for g in range(scales.shape[1]):
        t0, t1, t2, t3 = _group_dot4(p, xe, xq, m0, g * width, width, bits)
        s, b = scales[n, g], mins[n, g]
        a0 += s * t0 + b * xs[m0, g]
        a1 += s * t1 + b * xs[m0 + 1, g]
        a2 += s * t2 + b * xs[m0 + 2, g]
        a3 += s * t3 + b * xs[m0 + 3, g]
    out[m0, n] = a0
    out[m0 + 1, n] = a1
    out[m0 + 2, n] = a2
    if m0 + 3 < out.shape[0]:
        out[m0 + 3, n] = a3


@njit(fastmath=True, cache=True, inline="always")
def _output(p, xe, xq, xs, scales, mins, out, n, width, bits):
    """out[:, n] from the weight row p (bytes): blocks of 4 x rows (3 rows padded to 4), then 2, then 1."""
    m = out.shape[0]
    m0 = 0
    while m0 < m:
        if m - m0 >= 3:
            _row4(p, xe, xq, xs, scales, mins, out, n, m0, width, bits)
            m0 += 4
        elif m - m0 == 2:
            _row2(p, xe, xq, xs, scales, mins, out, n, m0, width, bits)
            m0 += 2
        else:
            _row1(p, xe, xq, xs, scales, mins, out, n, m0, width, bits)
            m0 += 1


@njit(parallel=True, fastmath=True, cache=True)
def _fused_kernel(x, packed, scales, mins, out, group_size, bits):
    """out (M, N) = x (M, K) @ W^T for M <= FUSED_ROWS, reading the packed weights directly."""
    xe, xq, xs = _split_x(x, group_size, bits, (x.shape[0] + 3) // 4 * 4)
    width = packed.shape[1] // scales.shape[1]  # bytes per group
    for n in prange(packed.shape[0]):
        _output(packed[n], xe, xq, xs, scales, mins, out, n, width, bits)


@njit(parallel=True, fastmath=True, cache=True)
def _gemv_kernel(x, packed, scales, mins, out, group_size, bits):
    """out (1, N) = x (1, K) @ W^T, reading the packed weights directly."""
    xe, xq, xs = _split_x(x, group_size, bits, 1)
    e, q, sums = xe[0], xq[0], xs[0]
    width = packed.shape[1] // scales.shape[1]  # bytes per group
    for n in prange(packed.shape[0]):
        p = packed[n]
        a = np.float32(0.0)
        for g in range(scales.shape[1]):
            a += scales[n, g] * _group_dot1(p, e, q, g * width, width, bits) + mins[n, g] * sums[g]
        out[0, n] = a


@njit(parallel=True, fastmath=True, cache=True)
def _dequantize_kernel(packed, scales, mins, w, bits):
    """w (N, K) float32 = the weight the packed format stands for."""
    n_out, n_groups = scales.shape
    width = packed.shape[1] // n_groups
    for n in prange(n_out):
        for g in range(n_groups):
            s, b = scales[n, g], mins[n, g]
            for j in range(width):
                c = g * width + j
                f = np.float32(packed[n, c])
                if bits == 8:
                    w[n, c] = s * f + b
                else:
                    h = np.floor(f * np.float32(0.0625))
                    w[n, 2 * c] = s * (f - np.float32(16.0) * h) + b
                    w[n, 2 * c + 1] = s * h + b


def dequantize_cpu(packed: torch.Tensor, scales: torch.Tensor, mins: torch.Tensor, bits: int) -> torch.Tensor:
    """The float32 weight (N, K), dequantized by a parallel Numba loop. No checks: callers validate."""
    return _dequantize_arrays(packed.numpy(), scales.numpy(), mins.numpy(), bits)


def _dequantize_arrays(packed: np.ndarray, scales: np.ndarray, mins: np.ndarray, bits: int) -> torch.Tensor:
    n, cols = packed.shape
    w = torch.empty(n, cols * (8 // bits))
    _dequantize_kernel(packed, scales, mins, w.numpy(), bits)
    return w


def quant_matmul_cpu(x: torch.Tensor, packed: torch.Tensor, scales: torch.Tensor, mins: torch.Tensor,
                     out: torch.Tensor, bits: int, group_size: int) -> torch.Tensor:
    """Fill out (..., N) with x (..., K) @ W^T and return it. No checks: callers validate (contiguous CPU
    float32 x and out, uint8 packed, float32 scales and mins in the stored format, no autograd)."""
    return quant_matmul_arrays(x, packed.numpy(), scales.numpy(), mins.numpy(), out, bits, group_size)


def quant_matmul_arrays(x: torch.Tensor, packed: np.ndarray, scales: np.ndarray, mins: np.ndarray,
                        out: torch.Tensor, bits: int, group_size: int) -> torch.Tensor:
    """``quant_matmul_cpu`` with the stored weight as numpy arrays, for callers that keep them (a numpy view
    per call costs about a microsecond, and a decode step makes hundreds of these calls)."""
    x2d = x.detach().reshape(-1, x.shape[-1])
    out2d = out.view(-1, out.shape[-1])
    if x2d.shape[0] > FUSED_ROWS:
        torch.matmul(x2d, _dequantize_arrays(packed, scales, mins, bits).T, out=out2d)
    else:
        kernel = _gemv_kernel if x2d.shape[0] == 1 else _fused_kernel
        kernel(x2d.numpy(), packed, scales, mins, out2d.numpy(), group_size, bits)
    return out
