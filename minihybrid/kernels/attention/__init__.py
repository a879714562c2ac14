"""Scaled dot-product attention with causal masking, sliding windows and grouped-query heads.

Glossary of tensor dimensions:
    B    batch size
    Hq   query heads
    Hkv  key/value heads; Hq is a multiple of Hkv and query head h reads kv head h // (Hq // Hkv) (GQA)
    Tq   query positions (new tokens); Tq <= Tk
    Tk   key/value positions (cached + new tokens)
    D    head dimension

q is (B, Hq, Tq, D), k and v are (B, Hkv, Tk, D), the output is (B, Hq, Tq, D). Queries are aligned to the
END of the keys: query i sits at absolute position Tk - Tq + i, so a decode step (Tq = 1) sees every key.
``causal`` lets position p see keys <= p; ``window`` = w keeps only keys > p - w (w keys including itself).

Backends (names and the "auto" rule: ``kernels/dispatch.py``; every one is tested against the reference):
    "reference"  reference.py, explicit scores; any float dtype, autograd
    "torch"      sdpa.py, PyTorch's fused SDPA; any float dtype, autograd
    "numba"      cpu.py, tiled online softmax on CPU; float32/float64, inference only
    "cuda"       cuda.py, numba.cuda kernel (or its simulator); float32, D <= 128, inference only
    "auto"       the fastest of these that takes the inputs
Inputs are validated before any kernel runs: bad shapes, dtypes, devices, layouts or options raise
ValueError (arguments of the wrong Python type raise TypeError).
"""

from __future__ import annotations

import numbers

import torch

from minihybrid.kernels.attention.reference import attention_mask, attention_reference
from minihybrid.kernels.attention.sdpa import attention_sdpa
from minihybrid.kernels.dispatch import FLOAT_DTYPES, check_tensors, lazy, resolve_backend, run

__all__ = ["BACKENDS", "DTYPES", "attention", "attention_mask", "attention_reference", "attention_sdpa"]

DTYPES = {  # backend -> supported dtypes
    "reference": FLOAT_DTYPES,
    "torch": FLOAT_DTYPES,
    "numba": (torch.float32, torch.float64),
    "cuda": (torch.float32,),
}
BACKENDS = ("auto", *DTYPES)
CUDA_MAX_HEAD_DIM = 128  # cuda.py's K and V tiles take 2 * 32 * D * 4 bytes: 32 KiB of 48 KiB shared memory
LIMITS = {"cuda": lambda t: (None if t["q"].shape[-1] <= CUDA_MAX_HEAD_DIM
                             else f"head dim D <= {CUDA_MAX_HEAD_DIM} only, got {t['q'].shape[-1]}")}
_KERNELS = {
    "reference": attention_reference,
    "torch": attention_sdpa,
    "numba": lazy(f"{__name__}.cpu", "attention_cpu"),  # cpu.py and cuda.py import numba: only when run
    "cuda": lazy(f"{__name__}.cuda", "attention_cuda"),
}


def _check_shapes(q, k, v) -> None:
    (b, hq, tq, d), (bk, hkv, tk, dk) = q.shape, k.shape
    if k.shape != v.shape:
        raise ValueError(f"k and v shapes differ: {tuple(k.shape)} vs {tuple(v.shape)}")
    if bk != b:
        raise ValueError(f"batch size mismatch: q has {b}, k/v have {bk}")
    if dk != d:
        raise ValueError(f"head dim mismatch: q has D={d}, k/v have D={dk}")
    if hq % hkv:
        raise ValueError(f"query heads Hq={hq} must be a multiple of kv heads Hkv={hkv}")
    if tq > tk:
        raise ValueError(f"more queries than keys (Tq={tq} > Tk={tk}); queries align to the end of the keys")


def _check_options(causal, window, scale) -> None:
    if not isinstance(causal, bool):
        raise TypeError(f"causal must be a bool, got {causal!r}")
    if window is not None and (isinstance(window, bool) or not isinstance(window, numbers.Integral)):
        raise TypeError(f"window must be None or an int >= 1, got {window!r}")
    if window is not None and window < 1:
        raise ValueError(f"window must be >= 1 (keys seen including the query's own position), got {window}")
    if scale is not None and (isinstance(scale, bool) or not isinstance(scale, numbers.Real)):
        raise TypeError(f"scale must be None or a real number, got {scale!r}")


def attention(q, k, v, *, causal: bool = True, window: int | None = None, scale: float | None = None,
              backend: str = "auto", out: torch.Tensor | None = None) -> torch.Tensor:
    """softmax(q k^T * scale + mask) v for q (B, Hq, Tq, D), k/v (B, Hkv, Tk, D) -> (B, Hq, Tq, D).

    scale defaults to 1/sqrt(D). ``out``, if given, is written in place and returned.
    """
    check_tensors(q=(q, "B Hq Tq D"), k=(k, "B Hkv Tk D"), v=(v, "B Hkv Tk D"))
    _check_shapes(q, k, v)
    _check_options(causal, window, scale)
    backend = resolve_backend(backend, DTYPES, {"q": q, "k": k, "v": v}, out, LIMITS)
    return run(backend, _KERNELS, (q, k, v), out, causal=causal, window=window, scale=scale)
