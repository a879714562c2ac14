"""Quantized matmul: y = x @ W^T with W stored as packed 4- or 8-bit codes, dequantized on the fly.

Glossary of tensor dimensions:
    M           rows of x (every leading dim of x flattened): 1 per decoded token, k in a verify step
    K           inputs (x's last dim, W's columns)
    N           outputs (W's rows, y's last dim)
    group_size  consecutive inputs of a row sharing one scale and min; K for per-channel quantization

x is (..., K) and y (..., N). The weight is stored as packed (N, K // 2) uint8 for 4 bits (input 2c in the
low nibble of byte c, 2c + 1 in the high one) or (N, K) for 8 bits, with scales and mins (N, K // group_size)
float32: W[n, k] = scales[n, k // group_size] * code[n, k] + mins[n, k // group_size]. reference.py is the
one definition of the format (pack_codes, unpack_codes, dequantize).

Backends (names and the "auto" rule: ``kernels/dispatch.py``; every one is tested against the reference):
    "reference"  reference.py: unpack, dequantize, matmul; any float dtype, autograd through x
    "numba"      cpu.py: fused dequantize-matmul for up to 8 rows (one read of the weights for all rows),
                 dequantize + BLAS above; float32, inference only. ``cpu.quant_matmul_cpu`` is the same
                 without the checks, for callers that validated once (a model's decode loop)
    "cuda"       cuda.py, numba.cuda kernel (or its simulator); float32, inference only
    "auto"       "numba" for CPU tensors it takes, "cuda" for CUDA tensors, else "reference"
"""

from __future__ import annotations

import torch

from minihybrid.checks import check_int
from minihybrid.kernels.dispatch import FLOAT_DTYPES, lazy, resolve_backend, run
from minihybrid.kernels.quant_matmul.reference import (
    BITS,
    dequantize,
    pack_codes,
    quant_matmul_reference,
    unpack_codes,
)

__all__ = ["BACKENDS", "BITS", "DTYPES", "check_weight", "dequantize", "pack_codes", "quant_matmul",
           "quant_matmul_reference", "unpack_codes"]

DTYPES = {  # backend -> supported dtypes of x
    "reference": FLOAT_DTYPES,
    "numba": (torch.float32,),
    "cuda": (torch.float32,),
}
BACKENDS = ("auto", *DTYPES)
_KERNELS = {
    "reference": quant_matmul_reference,
    "numba": lazy(f"{__name__}.cpu", "quant_matmul_cpu"),
    "cuda": lazy(f"{__name__}.cuda", "quant_matmul_cuda"),
}


def check_weight(packed, scales, mins, bits, group_size) -> int:
    """Check the stored weight (format in the module docstring); return K."""
    if isinstance(bits, bool) or bits not in BITS:
        raise ValueError(f"bits must be 4 or 8, got {bits!r}")
    check_int("group_size", group_size)
    for name, t in (("packed", packed), ("scales", scales), ("mins", mins)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if packed.dtype != torch.uint8 or packed.dim() != 2 or packed.numel() == 0:
        raise ValueError(f"packed must be a non-empty 2-D uint8 tensor (N, K{' // 2' * (bits == 4)}), "
                         f"got {packed.dtype} of shape {tuple(packed.shape)}")
    n, k = packed.shape[0], packed.shape[1] * 8 // bits
    if k % group_size or (bits == 4 and group_size % 2):
        raise ValueError(f"group_size {group_size} must divide K = {k}" + (" and be even for 4 bits"
                                                                           if bits == 4 else ""))
    for name, t in (("scales", scales), ("mins", mins)):
        if t.dtype != torch.float32 or t.shape != (n, k // group_size):
            raise ValueError(f"{name} must be float32 (N, K // group_size) = ({n}, {k // group_size}), "
                             f"got {t.dtype} of shape {tuple(t.shape)}")
    return k


def quant_matmul(x, packed, scales, mins, *, bits: int, group_size: int, backend: str = "auto",
                 out: torch.Tensor | None = None) -> torch.Tensor:
    """x (..., K) @ W^T -> (..., N) for W stored as packed codes (N, K * bits / 8) uint8 and scales, mins
    (N, K // group_size) float32 (format: module docstring). Fills ``out`` if given."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    k = check_weight(packed, scales, mins, bits, group_size)
    if x.dim() == 0 or x.numel() == 0 or x.shape[-1] != k:
        raise ValueError(f"x must be non-empty (..., K) with K = {k} inputs, got shape {tuple(x.shape)}")
    devices = {t.device for t in (x, packed, scales, mins)}
    if len(devices) > 1:
        raise ValueError(f"device mismatch: x {x.device}, packed {packed.device}, scales {scales.device}, "
                         f"mins {mins.device}")
    out_shape = (*x.shape[:-1], packed.shape[0])
    inputs = {"x": x, "packed": packed, "scales": scales, "mins": mins}
    backend = resolve_backend(backend, DTYPES, inputs, out, out_shape=torch.Size(out_shape))
    return run(backend, _KERNELS, tuple(inputs.values()), out, out_shape=out_shape, bits=bits,
               group_size=group_size)
