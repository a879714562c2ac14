"""Numba CPU quantized matmul over the packed weights of reference.py (float32, inference only).

Shapes: x (M, K) float32, packed (N, K // 2) uint8 for 4 bits or (N, K) for 8 bits, scales and mins
(N, K // group_size) float32, out (M, N) float32; all C-contiguous (leading dims of x and out are flattened).

One row (a decode step) runs ``_gemv_kernel``: a parallel loop over output rows n, one ``_group_dot`` per
group. Per group only scales * (codes . x) needs the weights; mins * sum(x_group) uses the group sums of x,
computed once per call. For 4 bits the even/odd inputs are split once per call and the low nibble never
unpacked: with f = byte and h = floor(f / 16) (the high nibble), lo * x[2c] + h * x[2c+1] =
f * x[2c] + h * (x[2c+1] - 16 x[2c]). (Integer unpacking is slower here: Numba widens small ints to int64,
which AVX2 cannot convert to float.)

2 to TILED_ROWS rows (the k tokens of a speculative verify step, short prompts) run ``_tiled_kernel``: a
parallel loop over tiles of TILE_N weight rows dequantizes each tile once into a float32 buffer that stays
in cache (4 bits: the even inputs' weights, then the odd ones', so both stores are contiguous), then every x
row (split the same way) runs the skinny matmul's ``dot_tile`` over it. Unpacking is paid once per weight,
not once per row, and the dot loop keeps 8 vector accumulators over all of K, with no sum to reduce per
group. At 8 rows it costs about 3.5 one-row passes over SmolLM2's shapes (unpacking once per block of 4 rows
in the group dots cost 11, dequantizing all of W for BLAS 11). Each row's output comes from the same loop
for any M in 2..TILED_ROWS. More rows (long prompts) dequantize W into a float32 buffer with a parallel loop
and hand it to BLAS (torch.matmul).

Measured and set aside (SmolLM2's int4 linears, ms): the one-row trick extended to 8 x rows at once, with no
buffer (13.1 against 13.9 at 2 rows, 40.7 against 27.4 at 8: a sum to reduce per group and row); int8
activations with integer dot products, as llama.cpp does (LLVM keeps the 8 integer accumulators in 64-bit
lanes: 60 against 28 at 8 rows; at one row 12.2 against 7.2, the activations' quantization included).
"""

from __future__ import annotations

import numpy as np
import torch
from numba import get_num_threads, njit, prange

from minihybrid.kernels.skinny_matmul.cpu import TILE_N, dot_tile

TILED_ROWS = 128  # over SmolLM2's linears the tiled kernel took 474 ms at 128 rows, dequantize + BLAS 530;
# at 256 rows 1041 against 827


@njit(fastmath=True, cache=True)
def _split_x(x, group_size, bits):
    """x (1, K) -> (e, q, sums): even inputs (K // 2,), odd - 16 even (K // 2,) (for 8 bits e = q = x[0]),
    group sums (K // group_size,)."""
    k = x.shape[1]
    sums = np.zeros(k // group_size, np.float32)
    for g in range(k // group_size):
        for j in range(group_size):
            sums[g] += x[0, g * group_size + j]
    if bits == 8:
        return x[0], x[0], sums
    e = np.empty(k // 2, np.float32)
    q = np.empty(k // 2, np.float32)
    for c in range(k // 2):
        e[c] = x[0, 2 * c]
        q[c] = x[0, 2 * c + 1] - np.float32(16.0) * x[0, 2 * c]
    return e, q, sums


# The loops below run over range(width) and add c0 (or slice the group): a loop over range(c0, c0 + width)
# does not vectorize in Numba (about 9x slower).
@njit(fastmath=True, cache=True, inline="always")
def _group_dot(p, e, q, c0, width, bits):
    """codes . x over bytes c0..c0 + width of the weight row p (e, q: see _split_x)."""
    t = np.float32(0.0)
    if bits == 8:
        for j in range(width):
            t += np.float32(p[c0 + j]) * e[c0 + j]
        return t
    for j in range(width):
        f = np.float32(p[c0 + j])
        h = np.floor(f * np.float32(0.0625))
        t += f * e[c0 + j] + h * q[c0 + j]
    return t


@njit(fastmath=True, cache=True, inline="always")
def _nibbles(byte):
    """(low, high) nibble of a uint8 as float32, in float arithmetic."""
    f = np.float32(byte)
    h = np.floor(f * np.float32(0.0625))
    return f - np.float32(16.0) * h, h


@njit(fastmath=True, cache=True, inline="always")
def _dequantize_row(p, scales, mins, lo, hi, width, bits):
    """Weight row p (bytes) dequantized: 8 bits into lo (K,); 4 bits the even inputs' weights into lo
    (K // 2,) and the odd ones' into hi. Separate arrays and group slices keep both stores vectorized."""
    for g in range(scales.shape[0]):
        s, b = scales[g], mins[g]
        pg = p[g * width:(g + 1) * width]
        lg = lo[g * width:(g + 1) * width]
        if bits == 8:
            for j in range(width):
                lg[j] = s * np.float32(pg[j]) + b
        else:
            hg = hi[g * width:(g + 1) * width]
            for j in range(width):
                low, high = _nibbles(pg[j])
                lg[j] = s * low + b
                hg[j] = s * high + b


@njit(parallel=True, fastmath=True, cache=True)
def _tiled_kernel(x, packed, scales, mins, out, bits, threads):
    """out (M, N) = x (M, K) @ W^T for 2 <= M <= TILED_ROWS: each tile of weight rows dequantized once, the
    tiles split into one run per thread (one pair of tile buffers each)."""
    n_out, cols = packed.shape
    width = cols // scales.shape[1]  # bytes per group
    if bits == 4:
        xe, xo = np.ascontiguousarray(x[:, 0::2]), np.ascontiguousarray(x[:, 1::2])
    else:
        xe = xo = x
    tiles = (n_out + TILE_N - 1) // TILE_N
    chunks = min(tiles, threads)
    for chunk in prange(chunks):
        lo = np.empty((TILE_N, cols), np.float32)
        hi = np.empty((TILE_N, cols), np.float32)
        for t in range(chunk * tiles // chunks, (chunk + 1) * tiles // chunks):
            n0 = t * TILE_N
            rows = min(TILE_N, n_out - n0)
            for i in range(rows):
                _dequantize_row(packed[n0 + i], scales[n0 + i], mins[n0 + i], lo[i], hi[i], width, bits)
            for m in range(x.shape[0]):
                a = dot_tile(xe[m], lo, 0, rows - 1)
                if bits == 4:
                    b = dot_tile(xo[m], hi, 0, rows - 1)
                    for i in range(rows):
                        out[m, n0 + i] = a[i] + b[i]
                else:
                    for i in range(rows):
                        out[m, n0 + i] = a[i]


@njit(parallel=True, fastmath=True, cache=True)
def _gemv_kernel(x, packed, scales, mins, out, group_size, bits):
    """out (1, N) = x (1, K) @ W^T, reading the packed weights directly."""
    e, q, sums = _split_x(x, group_size, bits)
    width = packed.shape[1] // scales.shape[1]  # bytes per group
    for n in prange(packed.shape[0]):
        p = packed[n]
        a = np.float32(0.0)
        for g in range(scales.shape[1]):
            a += scales[n, g] * _group_dot(p, e, q, g * width, width, bits) + mins[n, g] * sums[g]
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
                if bits == 8:
                    w[n, c] = s * np.float32(packed[n, c]) + b
                else:
                    low, high = _nibbles(packed[n, c])
                    w[n, 2 * c] = s * low + b
                    w[n, 2 * c + 1] = s * high + b


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
    if x2d.shape[0] > TILED_ROWS:
        torch.matmul(x2d, _dequantize_arrays(packed, scales, mins, bits).T, out=out2d)
    elif x2d.shape[0] == 1:
        _gemv_kernel(x2d.numpy(), packed, scales, mins, out2d.numpy(), group_size, bits)
    else:
        _tiled_kernel(x2d.numpy(), packed, scales, mins, out2d.numpy(), bits, get_num_threads())
    return out
