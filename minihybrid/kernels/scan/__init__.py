"""The selective state-space scan of Mamba-2 (SSD), with an initial state in and the final state out.

Glossary of tensor dimensions:
    batch  sequences
    T      tokens
    H      heads; each has its own scalar decay A_h < 0
    P      head dim (channels of x per head)
    G      B/C groups; H is a multiple of G and head h reads group h // (H // G)
    N      state size (d_state)

Per head, with state S (P, N):  S_t = exp(dt_t A) S_{t-1} + dt_t x_t B_t^T,  y_t = S_t C_t.
Inputs: x (batch, T, H, P), dt (batch, T, H) > 0 (already softplus'ed), A (H,) < 0, B and C
(batch, T, G, N), initial_state (batch, H, P, N) or None (zeros). Returns y (batch, T, H, P) and the final
state (batch, H, P, N) (the state after the last token, to continue from), like flash-linear-attention's
(o, final_state).

Backends (names and the "auto" rule: ``kernels/dispatch.py``; every one is tested against the reference):
    "reference"  reference.py, the recurrence one token at a time; autograd (slow: the specification)
    "torch"      chunked.py, the chunked SSD form in chunks of `chunk_size`; autograd (the training path)
    "numba"      cpu.py, the recurrence compiled, parallel over batch x heads; float32/float64, inference only
    "cuda"       cuda.py, numba.cuda kernel (or its simulator); float32, P <= 1024, N <= 256, inference only
    "auto"       the fastest of these that takes the inputs
Inputs are validated before any kernel runs: bad shapes, dtypes, devices, layouts or options raise ValueError
(arguments of the wrong Python type raise TypeError).
"""

from __future__ import annotations

import torch

from minihybrid.checks import check_int
from minihybrid.kernels.dispatch import (
    DIFFERENTIABLE,
    FLOAT_DTYPES,
    check_out,
    check_tensors,
    lazy,
    resolve_backend,
)
from minihybrid.kernels.scan.chunked import segsum, ssd_chunked
from minihybrid.kernels.scan.reference import ssd_reference, ssd_step

__all__ = ["BACKENDS", "DTYPES", "segsum", "ssd_chunked", "ssd_reference", "ssd_scan", "ssd_step"]

DTYPES = {  # backend -> supported dtypes
    "reference": FLOAT_DTYPES,
    "torch": FLOAT_DTYPES,
    "numba": (torch.float32, torch.float64),
    "cuda": (torch.float32,),
}
BACKENDS = ("auto", *DTYPES)
CUDA_MAX_HEAD_DIM = 1024  # cuda.py runs one thread per state row: P threads per block
CUDA_MAX_STATE = 256  # cuda.py stages B and C of 16 tokens in shared memory: 2 * 16 * N * 4 bytes = 32 KiB


def _cuda_limit(named) -> str | None:
    p, n = named["x"].shape[-1], named["B"].shape[-1]
    if p > CUDA_MAX_HEAD_DIM:
        return f"head dim P <= {CUDA_MAX_HEAD_DIM} only, got {p}"
    if n > CUDA_MAX_STATE:
        return f"state size N <= {CUDA_MAX_STATE} only, got {n}"
    return None


LIMITS = {"cuda": _cuda_limit}
_KERNELS = {
    "reference": ssd_reference,
    "torch": ssd_chunked,
    "numba": lazy(f"{__name__}.cpu", "ssd_cpu"),  # cpu.py and cuda.py import numba: only when run
    "cuda": lazy(f"{__name__}.cuda", "ssd_cuda"),
}


def _check_shapes(x, dt, A, B, C, initial_state) -> None:
    batch, length, heads, p = x.shape
    n = B.shape[-1]
    if dt.shape != (batch, length, heads):
        raise ValueError(f"dt must have shape (batch, T, H) = {(batch, length, heads)}, "
                         f"got {tuple(dt.shape)}")
    if A.shape != (heads,):
        raise ValueError(f"A must have shape (H,) = ({heads},), got {tuple(A.shape)}")
    if B.shape != C.shape:
        raise ValueError(f"B and C shapes differ: {tuple(B.shape)} vs {tuple(C.shape)}")
    if B.shape[:2] != (batch, length):
        raise ValueError(f"B and C must have shape (batch, T, G, N) with batch, T = {batch}, {length} "
                         f"(from x), got {tuple(B.shape)}")
    if heads % B.shape[2]:
        raise ValueError(f"heads H={heads} must be a multiple of the B/C groups G={B.shape[2]}")
    if initial_state is not None and initial_state.shape != (batch, heads, p, n):
        raise ValueError(f"initial_state must have shape (batch, H, P, N) = {(batch, heads, p, n)}, "
                         f"got {tuple(initial_state.shape)} (a state from another batch size or model?)")


def ssd_scan(x, dt, A, B, C, *, initial_state=None, chunk_size: int = 64, backend: str = "auto",
             out: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(y, final_state) for the SSM scan (module docstring). ``chunk_size`` (tokens, >= 1) is used by "torch".

    ``out``, if given, is a (y, final_state) pair of tensors written in place and returned.
    """
    named = {"x": (x, "batch T H P"), "dt": (dt, "batch T H"), "A": (A, "H"), "B": (B, "batch T G N"),
             "C": (C, "batch T G N")}
    if initial_state is not None:
        named["initial_state"] = (initial_state, "batch H P N")
    check_tensors(**named)
    _check_shapes(x, dt, A, B, C, initial_state)
    check_int("chunk_size", chunk_size)
    state_shape = torch.Size((x.shape[0], x.shape[2], x.shape[3], B.shape[-1]))
    y_out, state_out = _check_out_pair(out)
    inputs = {name: t for name, (t, _) in named.items()}
    if state_out is not None:
        check_out(state_out, state_shape, x)
        inputs["final_state"] = state_out
    backend = resolve_backend(backend, DTYPES, inputs, y_out, LIMITS)
    if backend in DIFFERENTIABLE:
        y, state = _KERNELS[backend](x, dt, A, B, C, initial_state, chunk_size=chunk_size)
        if out is None:
            return y, state
        return y_out.copy_(y), state_out.copy_(state)
    y_out = torch.empty_like(x) if y_out is None else y_out
    state_out = x.new_empty(state_shape) if state_out is None else state_out
    if initial_state is None:
        initial_state = x.new_zeros(state_shape)
    _KERNELS[backend](x, dt, A, B, C, initial_state, y_out, state_out)
    return y_out, state_out


def _check_out_pair(out):
    if out is None:
        return None, None
    if not (isinstance(out, tuple) and len(out) == 2):
        raise TypeError("out must be a (y, final_state) tuple of tensors")
    return out
