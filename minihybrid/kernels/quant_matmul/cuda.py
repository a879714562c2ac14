"""numba.cuda quantized matmul over the packed weights of reference.py (float32).

Shapes: x (M, K) float32, packed (N, K // 2) uint8 for 4 bits or (N, K) for 8 bits, scales and mins
(N, K // group_size) float32, out (M, N) float32; all contiguous (leading dims of x and out flattened).

Launch: grid (ceil(N / BLOCK_N), M), one thread per output y[m, n]. A thread walks its weight row group by
group, unpacking each code from its byte (low nibble for even inputs, high for odd ones), and adds
scales * (codes . x_group) + mins * sum(x_group). Threads of a block read x[m] together, their weight rows
apart, which is simple rather than coalesced. This module imports numba.cuda, so ``__init__.py`` imports it
only when the "cuda" backend runs; with NUMBA_ENABLE_CUDASIM=1 the same kernel runs in numba's simulator on
CPU tensors (see ``kernels/numba_cuda.py``).
"""

from __future__ import annotations

import math

from numba import cuda, float32  # cuda must stay a module global: the simulator swaps it for a fake module

from minihybrid.kernels import numba_cuda

BLOCK_N = 32  # threads per block, one output each


@cuda.jit
def _kernel(x, packed, scales, mins, out, group_size, bits):
    n = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
    m = cuda.blockIdx.y
    if n >= out.shape[1]:
        return
    acc = float32(0.0)
    for g in range(scales.shape[1]):
        dot = float32(0.0)
        x_sum = float32(0.0)
        for k in range(g * group_size, (g + 1) * group_size):
            if bits == 8:
                code = packed[n, k]
            else:
                byte = packed[n, k // 2]
                code = byte >> 4 if k % 2 else byte & 15
            dot += float32(code) * x[m, k]
            x_sum += x[m, k]
        acc += scales[n, g] * dot + mins[n, g] * x_sum
    out[m, n] = acc


def quant_matmul_cuda(x, packed, scales, mins, out, bits, group_size):
    """Fill out (..., N) with x (..., K) @ W^T on checked contiguous float32 tensors (CUDA, or CPU under
    the simulator); returns ``out``."""
    x2d = x.detach().reshape(-1, x.shape[-1])
    out2d = out.view(-1, out.shape[-1])
    grid = (math.ceil(out2d.shape[1] / BLOCK_N), out2d.shape[0])
    numba_cuda.launch(_kernel, grid, BLOCK_N, (x2d, packed, scales, mins), (out2d,), group_size, bits)
    return out
