"""Shared helpers of the kernel tests: seeded inputs, tolerances, odd lengths, NaN outputs, reference checks.

Every fast path is compared with its op's reference on odd lengths (non-multiples of every tile size), with a
per-dtype tolerance, writing into an output pre-filled with NaN so that any element a kernel forgets to write
fails the comparison. Kernel test files import this as ``from kernels.helpers import ...`` (tests/ is on
sys.path, see tests/conftest.py).
"""

from __future__ import annotations

import torch

ODD_LENGTHS = (1, 63, 100, 257)
TOL = {  # per-dtype tolerance of a fast path against the reference
    torch.float16: {"atol": 2e-3, "rtol": 2e-3},
    torch.bfloat16: {"atol": 1e-2, "rtol": 1.6e-2},
    torch.float32: {"atol": 2e-5, "rtol": 1e-4},
    torch.float64: {"atol": 1e-12, "rtol": 1e-10},
}


def dtype_id(dtype: torch.dtype) -> str:
    """'float32' for torch.float32: readable pytest ids."""
    return str(dtype).removeprefix("torch.")


def randn(*shapes: tuple[int, ...], dtype=torch.float32, seed: int = 0, device="cpu") -> list[torch.Tensor]:
    """One standard-normal tensor per shape, drawn from one seeded generator (on the CPU, then moved)."""
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=g, dtype=dtype).to(device) for shape in shapes]


def qkv(b: int, hq: int, hkv: int, tq: int, tk: int, d: int, dtype=torch.float32, seed: int = 0,
        device="cpu") -> list[torch.Tensor]:
    """Attention inputs: q (b, hq, tq, d), k and v (b, hkv, tk, d), standard normal from one seed."""
    return randn((b, hq, tq, d), (b, hkv, tk, d), (b, hkv, tk, d), dtype=dtype, seed=seed, device=device)


def nan_like(t: torch.Tensor) -> torch.Tensor:
    return torch.full_like(t, float("nan"))


def assert_close(got: torch.Tensor, expected: torch.Tensor) -> None:
    """got == expected within the tolerance of expected's dtype (compared on the CPU)."""
    torch.testing.assert_close(got.cpu(), expected.cpu(), **TOL[expected.dtype])


def check_backend(op, reference, inputs, backend: str, **options) -> torch.Tensor:
    """op(*inputs, backend=backend, out=<NaN-filled, like inputs[0]>, **options) fills and returns that
    ``out``, which matches reference(*inputs, **options). Returns the output."""
    out = nan_like(inputs[0])
    got = op(*inputs, backend=backend, out=out, **options)
    assert got is out
    assert_close(out, reference(*inputs, **options))
    return out
