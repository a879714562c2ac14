"""Reference quantized matmul: unpack the codes, dequantize, then an ordinary matmul. The specification
every fast path is tested against, and the one definition of the stored format.

Stored format of a weight W (N outputs, K inputs), quantized in groups of `group_size` consecutive inputs
(K % group_size == 0; per-channel quantization is group_size = K):
    codes    unsigned integers in [0, 2**bits - 1], bits 4 or 8
    packed   uint8; bits 8: (N, K), one code per byte; bits 4: (N, K // 2), two codes per byte with
             input 2c in the LOW nibble and input 2c + 1 in the HIGH nibble of byte c
    scales   float32 (N, K // group_size)
    mins     float32 (N, K // group_size)
    W[n, k] = scales[n, k // group_size] * codes[n, k] + mins[n, k // group_size]
Symmetric schemes store mins = -2**(bits - 1) * scales (the zero point is the middle code); asymmetric ones
store the group's own offset. One affine form for both lets a kernel use llama.cpp's Q4_1 trick:
    y[n] = sum_g scales[n, g] * (codes[n, g] . x[g]) + mins[n, g] * sum(x[g])
so the per-group sums of x are computed once per input row and shared by every output.
"""

from __future__ import annotations

import torch

BITS = (4, 8)


def pack_codes(codes: torch.Tensor, bits: int) -> torch.Tensor:
    """(N, K) integer codes in [0, 2**bits) -> packed uint8 (N, K) for 8 bits, (N, K // 2) for 4 bits.

    Exercise twin: ex05.pack_int4 (4 bits only)."""
    codes = codes.to(torch.uint8)
    if bits == 8:
        return codes.contiguous()
    return (codes[:, 0::2] | (codes[:, 1::2] << 4)).contiguous()


def unpack_codes(packed: torch.Tensor, bits: int) -> torch.Tensor:
    """Packed uint8 -> (N, K) uint8 codes; the inverse of pack_codes."""
    if bits == 8:
        return packed
    return torch.stack((packed & 15, packed >> 4), dim=-1).flatten(-2)


def dequantize(packed: torch.Tensor, scales: torch.Tensor, mins: torch.Tensor, bits: int,
               group_size: int) -> torch.Tensor:
    """The float32 weight (N, K) that the stored format stands for.

    Exercise twin: ex05.dequantize_groups."""
    codes = unpack_codes(packed, bits).float()
    n, k = codes.shape
    grouped = codes.view(n, k // group_size, group_size)
    return (grouped * scales[..., None] + mins[..., None]).view(n, k)


def quant_matmul_reference(x: torch.Tensor, packed: torch.Tensor, scales: torch.Tensor, mins: torch.Tensor,
                           bits: int, group_size: int) -> torch.Tensor:
    """x (..., K) float -> x @ W^T (..., N) with W = dequantize(...), computed in x's dtype."""
    return x @ dequantize(packed, scales, mins, bits, group_size).to(x.dtype).T
