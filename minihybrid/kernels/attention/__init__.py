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

Backends (the readable spec is ``reference.py``; every fast path is tested against it):
    "torch"  reference.py, any float dtype and device, supports autograd
    "numba"  cpu.py, tiled online softmax on CPU, float32/float64, contiguous tensors, inference only
    "cuda"   cuda.py, numba.cuda kernel (or its simulator with NUMBA_ENABLE_CUDASIM=1), float32, contiguous,
             inference only
    "auto"   "cuda" for float32 CUDA tensors when numba.cuda is available, "numba" for float32/float64 CPU
             tensors, else "torch"; it never picks an inference-only backend when autograd needs the output
             or the tensors are not contiguous.
Inputs are validated before any kernel runs (Numba does no bounds checks): bad shapes, dtypes, devices,
layouts or options raise ValueError (arguments of the wrong Python type raise TypeError).
"""

from __future__ import annotations

import functools
import numbers

import torch

from minihybrid.kernels.attention.cuda import MAX_HEAD_DIM as _CUDA_MAX_HEAD_DIM
from minihybrid.kernels.attention.cuda import attention_cuda
from minihybrid.kernels.attention.reference import attention_mask, attention_reference
from minihybrid.runtime import simulator_enabled

__all__ = ["BACKENDS", "attention", "attention_mask", "attention_reference"]

BACKENDS = ("auto", "torch", "numba", "cuda")
_DTYPES = {
    "torch": (torch.float16, torch.bfloat16, torch.float32, torch.float64),
    "numba": (torch.float32, torch.float64),
    "cuda": (torch.float32,),
}


@functools.cache
def _numba_cuda_available() -> bool:
    """True when numba.cuda can run kernels here (a real GPU, or the simulator)."""
    try:
        from numba import cuda
    except ImportError:
        return False
    return simulator_enabled() or cuda.is_available()


def _needs_grad(*tensors) -> bool:
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def _choose_backend(q, k, v, out) -> str:
    tensors = (q, k, v) if out is None else (q, k, v, out)
    if _needs_grad(q, k, v) or not all(t.is_contiguous() for t in tensors):
        return "torch"
    if q.device.type == "cuda":
        return "cuda" if q.dtype == torch.float32 and _numba_cuda_available() else "torch"
    if q.device.type == "cpu" and q.dtype in _DTYPES["numba"]:
        return "numba"
    return "torch"


def _validate(q, k, v, causal, window, scale, backend, out) -> str:
    """Check everything a kernel relies on; return the concrete backend name."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(map(repr, BACKENDS))}")
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dim() != 4:
            raise ValueError(f"{name} must have rank 4 (B, H, T, D), got shape {tuple(t.shape)}")
        if 0 in t.shape:
            raise ValueError(f"{name} has an empty dimension: shape {tuple(t.shape)}")
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
    if not (q.dtype == k.dtype == v.dtype):
        raise ValueError(f"dtype mismatch: q {q.dtype}, k {k.dtype}, v {v.dtype}")
    if not (q.device == k.device == v.device):
        raise ValueError(f"device mismatch: q on {q.device}, k on {k.device}, v on {v.device}")
    if not isinstance(causal, bool):
        raise TypeError(f"causal must be a bool, got {causal!r}")
    if window is not None and (isinstance(window, bool) or not isinstance(window, numbers.Integral)):
        raise TypeError(f"window must be None or an int >= 1, got {window!r}")
    if window is not None and window < 1:
        raise ValueError(f"window must be >= 1 (keys seen including the query's own position), got {window}")
    if scale is not None and (isinstance(scale, bool) or not isinstance(scale, numbers.Real)):
        raise TypeError(f"scale must be None or a real number, got {scale!r}")
    if out is not None:
        if not isinstance(out, torch.Tensor):
            raise TypeError(f"out must be a torch.Tensor, got {type(out).__name__}")
        if out.shape != q.shape:
            raise ValueError(f"out has shape {tuple(out.shape)}, expected {tuple(q.shape)} (B, Hq, Tq, D)")
        if out.dtype != q.dtype:
            raise ValueError(f"out dtype {out.dtype} differs from the input dtype {q.dtype}")
        if out.device != q.device:
            raise ValueError(f"out is on {out.device}, the inputs on {q.device}")

    if backend == "auto":
        backend = _choose_backend(q, k, v, out)
    if q.dtype not in _DTYPES[backend]:
        names = ", ".join(str(dt).removeprefix("torch.") for dt in _DTYPES[backend])
        raise ValueError(f"dtype {q.dtype} is not supported by backend {backend!r} (supported: {names})")
    if backend in ("numba", "cuda"):
        tensors = {"q": q, "k": k, "v": v} if out is None else {"q": q, "k": k, "v": v, "out": out}
        for name, t in tensors.items():
            if not t.is_contiguous():
                raise ValueError(f"{name} must be contiguous for backend {backend!r} (call .contiguous())")
        if _needs_grad(q, k, v):
            raise ValueError(f"backend {backend!r} is inference only: inputs require grad "
                             "(use backend='torch', or run under torch.no_grad())")
    if backend == "numba" and q.device.type != "cpu":
        raise ValueError(f"backend 'numba' needs CPU tensors, got device {q.device}")
    if backend == "cuda":
        if q.device.type == "cpu" and not simulator_enabled():
            raise ValueError("backend 'cuda' needs CUDA tensors (or CPU tensors with NUMBA_ENABLE_CUDASIM=1)")
        if q.device.type not in ("cpu", "cuda"):
            raise ValueError(f"backend 'cuda' needs CUDA tensors, got device {q.device}")
        if not _numba_cuda_available():
            raise ValueError("backend 'cuda' needs numba.cuda with a GPU (pip install numba-cuda)")
        if d > _CUDA_MAX_HEAD_DIM:
            raise ValueError(f"backend 'cuda' supports head dim D <= {_CUDA_MAX_HEAD_DIM}, got {d}")
    return backend


def attention(q, k, v, *, causal: bool = True, window: int | None = None, scale: float | None = None,
              backend: str = "auto", out: torch.Tensor | None = None) -> torch.Tensor:
    """softmax(q k^T * scale + mask) v for q (B, Hq, Tq, D), k/v (B, Hkv, Tk, D) -> (B, Hq, Tq, D).

    scale defaults to 1/sqrt(D). ``out``, if given, is written in place and returned.
    """
    backend = _validate(q, k, v, causal, window, scale, backend, out)
    if backend == "torch":
        result = attention_reference(q, k, v, causal=causal, window=window, scale=scale)
        return result if out is None else out.copy_(result)
    if out is None:
        out = torch.empty_like(q)
    if backend == "numba":
        from minihybrid.kernels.attention.cpu import attention_cpu  # imports numba: only when needed

        attention_cpu(q.detach().numpy(), k.detach().numpy(), v.detach().numpy(), out.detach().numpy(),
                      causal=causal, window=window, scale=scale)
    else:
        attention_cuda(q.detach(), k.detach(), v.detach(), out.detach(), causal=causal, window=window,
                       scale=scale)
    return out
