"""Skinny matmul: y = x @ W^T for a few rows of x (decode, speculative verify), batch invariant.

Glossary of tensor dimensions:
    M  rows of x (every leading dim of x flattened): 1 per decoded token, k in a verify step
    K  inputs (x's last dim, W's columns)
    N  outputs (W's rows, y's last dim): W is an nn.Linear's weight

x is (..., K), W (N, K) and y (..., N). With a handful of rows the time is reading W, so the Numba kernel
reads each weight row once for all M rows. It is batch invariant: y[m] is bitwise the same whatever the other
rows are and however many there are, so a verify pass over k tokens gives exactly the outputs of k
single-token steps (``cpu.py`` says how).

Backends (names and the "auto" rule: ``kernels/dispatch.py``; every one is tested against the reference):
    "reference"  reference.py: x @ W.T; any float dtype, autograd
    "numba"      cpu.py: float32, inference only; batch invariant. ``cpu.skinny_matmul_cpu`` is the same
                 without the checks, for callers that validated once (``minihybrid.fast_linear``)
    "cuda"       cuda.py, numba.cuda kernel (or its simulator); float32, inference only
    "auto"       "numba" for CPU tensors it takes, "cuda" for CUDA tensors, else "reference"
"""

from __future__ import annotations

import torch

from minihybrid.kernels.dispatch import FLOAT_DTYPES, check_tensors, lazy, resolve_backend, run
from minihybrid.kernels.skinny_matmul.reference import skinny_matmul_reference

__all__ = ["BACKENDS", "DTYPES", "skinny_matmul", "skinny_matmul_reference"]

DTYPES = {  # backend -> supported dtypes of x and W
    "reference": FLOAT_DTYPES,
    "numba": (torch.float32,),
    "cuda": (torch.float32,),
}
BACKENDS = ("auto", *DTYPES)
_KERNELS = {
    "reference": skinny_matmul_reference,
    "numba": lazy(f"{__name__}.cpu", "skinny_matmul_cpu"),  # cpu.py and cuda.py import numba: only when run
    "cuda": lazy(f"{__name__}.cuda", "skinny_matmul_cuda"),
}


def skinny_matmul(x, w, backend: str = "auto", out: torch.Tensor | None = None) -> torch.Tensor:
    """x (..., K) @ W^T -> (..., N) for W (N, K). Fills ``out`` if given."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() == 0:
        raise ValueError("x must have shape (..., K), got a 0-d tensor")
    check_tensors(x=(x, " ".join(["..."] * (x.dim() - 1) + ["K"])), w=(w, "N K"))
    if x.shape[-1] != w.shape[1]:
        raise ValueError(f"x has K = {x.shape[-1]} inputs but w (N, K) has {w.shape[1]}: "
                         f"x {tuple(x.shape)}, w {tuple(w.shape)}")
    out_shape = torch.Size((*x.shape[:-1], w.shape[0]))
    backend = resolve_backend(backend, DTYPES, {"x": x, "w": w}, out, out_shape=out_shape)
    return run(backend, _KERNELS, (x, w), out, out_shape=out_shape)
