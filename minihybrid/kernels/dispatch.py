"""Backend names, input checks and dispatch shared by every kernel op (kernels/<op>/__init__.py).

Backends (every op uses these names; an op lists the ones it has in its dtype table):
    "reference"  reference.py: the readable specification; any float dtype, autograd
    "torch"      the differentiable fast path written in PyTorch (e.g. fused SDPA); autograd
    "numba"      cpu.py: Numba CPU kernel on contiguous CPU tensors; inference only
    "cuda"       cuda.py: numba.cuda kernel on contiguous CUDA tensors (CPU tensors under its simulator,
                 NUMBA_ENABLE_CUDASIM=1); inference only
    "auto"       "torch" when autograd needs the output or a tensor is not contiguous; else "cuda" for CUDA
                 tensors of a "cuda" dtype when numba.cuda has a GPU; "numba" for CPU tensors of a "numba"
                 dtype; else "torch" ("reference" for an op without a "torch" path). A backend whose op
                 limit refuses the inputs (e.g. a head dim too large for shared memory) is never chosen.

An op validates in this order, so nothing reaches a kernel unchecked (Numba does no bounds checks):
    check_tensors(q=(q, "B Hq Tq D"), ...)     types, ranks, non-empty, one dtype, one device
    <its own shape and option checks>
    backend = resolve_backend(backend, DTYPES, {"q": q, ...}, out, LIMITS)
    run(backend, KERNELS, (q, ...), out, **options)
Wrong Python types raise TypeError; wrong values, shapes, dtypes, devices or layouts raise ValueError.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence

import torch

from minihybrid.kernels import numba_cuda

BACKENDS = ("auto", "reference", "torch", "numba", "cuda")
DIFFERENTIABLE = ("reference", "torch")  # return a new tensor and support autograd
COMPILED = ("numba", "cuda")  # fill ``out`` from contiguous inputs; inference only
FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)

DtypeTable = Mapping[str, Sequence[torch.dtype]]  # backend -> dtypes it supports; its keys: the op's backends
# backend -> a function of the named inputs returning why that backend cannot take them, or None when it can
Limits = Mapping[str, Callable[[Mapping[str, torch.Tensor]], str | None]]


def _names(values) -> str:
    return ", ".join(str(v).removeprefix("torch.") if isinstance(v, torch.dtype) else repr(v) for v in values)


def check_tensors(**named: tuple[object, str]) -> None:
    """Each value is (tensor, dims), e.g. q=(q, "B Hq Tq D"): a torch.Tensor with one axis per name and
    no empty dimension; all tensors share one dtype and one device."""
    for name, (t, dims) in named.items():
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        rank = dims.count(" ") + 1  # dims: axis names separated by single spaces
        if t.dim() != rank:
            raise ValueError(f"{name} must have rank {rank} ({dims.replace(' ', ', ')}), "
                             f"got shape {tuple(t.shape)}")
        if t.numel() == 0:
            raise ValueError(f"{name} has an empty dimension: shape {tuple(t.shape)} "
                             f"({dims.replace(' ', ', ')})")
    first = next(iter(named.values()))[0]
    for attr in ("dtype", "device"):
        if any(getattr(t, attr) != getattr(first, attr) for t, _ in named.values()):
            found = ", ".join(f"{name} {getattr(t, attr)}" for name, (t, _) in named.items())
            raise ValueError(f"{attr} mismatch: {found}")


def needs_grad(*tensors: torch.Tensor) -> bool:
    """True when autograd would record an op on these tensors."""
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def choose_backend(dtypes: DtypeTable, named: Mapping[str, torch.Tensor],
                   limits: Limits | None = None) -> str:
    """The "auto" rule (module docstring) for these checked tensors (``out`` included, if any)."""
    fallback = "torch" if "torch" in dtypes else "reference"
    tensors = list(named.values())
    if needs_grad(*tensors) or not all(t.is_contiguous() for t in tensors):
        return fallback
    dtype, device = tensors[0].dtype, tensors[0].device.type

    def fits(backend: str) -> bool:
        return dtype in dtypes.get(backend, ()) and (limits or {}).get(backend, lambda _: None)(named) is None

    if device == "cuda" and numba_cuda.tensor_device() == "cuda" and fits("cuda") and numba_cuda.available():
        return "cuda"
    if device == "cpu" and fits("numba"):
        return "numba"
    return fallback


def check_out(out, shape: torch.Size, like: torch.Tensor) -> None:
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"out must be a torch.Tensor, got {type(out).__name__}")
    if out.shape != shape:
        raise ValueError(f"out has shape {tuple(out.shape)}, expected {tuple(shape)}")
    if out.dtype != like.dtype:
        raise ValueError(f"out dtype {out.dtype} differs from the input dtype {like.dtype}")
    if out.device != like.device:
        raise ValueError(f"out is on {out.device}, the inputs on {like.device}")


def _check_compiled(backend: str, named: Mapping[str, torch.Tensor]) -> None:
    """Device, contiguity and no-autograd requirements of the "numba" and "cuda" backends."""
    device = next(iter(named.values())).device
    if backend == "numba" and device.type != "cpu":
        raise ValueError(f"backend 'numba' needs CPU tensors, got device {device}")
    if backend == "cuda" and device.type != numba_cuda.tensor_device():
        where = ("CPU tensors under numba.cuda's simulator" if numba_cuda.tensor_device() == "cpu"
                 else "CUDA tensors (or CPU tensors under its simulator, NUMBA_ENABLE_CUDASIM=1)")
        raise ValueError(f"backend 'cuda' needs {where}, got device {device}")
    if backend == "cuda" and not numba_cuda.available():
        raise ValueError("backend 'cuda' needs numba.cuda with a GPU (pip install numba-cuda)")
    for name, t in named.items():
        if not t.is_contiguous():
            raise ValueError(f"{name} must be contiguous for backend {backend!r} (call .contiguous())")
    if needs_grad(*named.values()):
        raise ValueError(f"backend {backend!r} is inference only: inputs require grad "
                         "(use backend 'torch' or 'reference', or run under torch.no_grad())")


def resolve_backend(backend: str, dtypes: DtypeTable, inputs: Mapping[str, torch.Tensor],
                    out: torch.Tensor | None = None, limits: Limits | None = None,
                    out_shape: torch.Size | None = None) -> str:
    """Check ``backend`` and ``out`` for these checked inputs; return the backend that will run.

    ``dtypes`` is the op's table, ``limits`` its per-backend limits; ``out_shape`` defaults to the first
    input's shape.
    """
    if not isinstance(backend, str):
        raise TypeError(f"backend must be a str, got {type(backend).__name__}")
    allowed = ("auto", *dtypes)
    if backend not in allowed:
        raise ValueError(f"unknown backend {backend!r}; choose one of {_names(allowed)}")
    first = next(iter(inputs.values()))
    named = dict(inputs)
    if out is not None:
        check_out(out, first.shape if out_shape is None else out_shape, first)
        named["out"] = out
    if backend == "auto":
        backend = choose_backend(dtypes, named, limits)
    if first.dtype not in dtypes[backend]:
        raise ValueError(f"dtype {first.dtype} is not supported by backend {backend!r} "
                         f"(supported: {_names(dtypes[backend])})")
    if backend in COMPILED:
        _check_compiled(backend, named)
    reason = (limits or {}).get(backend, lambda _: None)(named)
    if reason is not None:
        raise ValueError(f"backend {backend!r} cannot run these inputs: {reason}")
    return backend


def lazy(module: str, name: str) -> Callable:
    """A function that calls ``module.name``, importing the module on first call (kernels import numba)."""

    def call(*args, **kwargs):
        return getattr(importlib.import_module(module), name)(*args, **kwargs)

    return call


def run(backend: str, kernels: Mapping[str, Callable], inputs: Sequence[torch.Tensor],
        out: torch.Tensor | None = None, out_shape: torch.Size | None = None, **options) -> torch.Tensor:
    """Run a resolved backend: kernels[backend](*inputs, **options) for the differentiable ones (the result
    copied into ``out`` when given), kernels[backend](*inputs, out, **options) for the compiled ones, which
    fill ``out`` (new, of ``out_shape``, default the first input's, when None). Returns the output."""
    if backend in DIFFERENTIABLE:
        result = kernels[backend](*inputs, **options)
        return result if out is None else out.copy_(result)
    if out is None:
        out = inputs[0].new_empty(inputs[0].shape if out_shape is None else out_shape)
    kernels[backend](*inputs, out, **options)
    return out
