"""The plumbing every kernel op shares (minihybrid/kernels/dispatch.py, numba_cpu.py, numba_cuda.py),
tested on a toy op so that no attention detail hides a gap."""

import os
import subprocess
import sys

import pytest
import torch

from minihybrid.kernels import dispatch, numba_cpu, numba_cuda
from minihybrid.kernels.dispatch import check_tensors, choose_backend, resolve_backend, run
from minihybrid.runtime import simulator_enabled

ALL = {"reference": dispatch.FLOAT_DTYPES, "torch": dispatch.FLOAT_DTYPES, "numba": (torch.float32,),
       "cuda": (torch.float32,)}
NO_TORCH = {"reference": dispatch.FLOAT_DTYPES, "numba": (torch.float32,)}


def xs(*shape, dtype=torch.float32):
    return torch.ones(shape, dtype=dtype), torch.ones(shape, dtype=dtype)


def test_backend_names_are_shared():
    from minihybrid.kernels.attention import BACKENDS

    assert dispatch.BACKENDS == ("auto", "reference", "torch", "numba", "cuda") == BACKENDS
    assert set(dispatch.DIFFERENTIABLE) | set(dispatch.COMPILED) == set(dispatch.BACKENDS) - {"auto"}


@pytest.mark.parametrize("a,b,error,match", [
    ([1.0], torch.ones(2, 3), TypeError, "a must be a torch.Tensor, got list"),
    (torch.ones(2), torch.ones(2, 3), ValueError, r"a must have rank 2 \(B, T\), got shape \(2,\)"),
    (torch.ones(2, 0), torch.ones(2, 3), ValueError, "a has an empty dimension"),
    (torch.ones(2, 3), torch.ones(2, 3, dtype=torch.float64), ValueError,
     "dtype mismatch: a torch.float32, b torch.float64"),
    (torch.ones(2, 3), torch.ones(2, 3, device="meta"), ValueError, "device mismatch: a cpu, b meta"),
])
def test_check_tensors(a, b, error, match):
    with pytest.raises(error, match=match):
        check_tensors(a=(a, "B T"), b=(b, "B T"))


def test_check_tensors_accepts_matching_tensors():
    check_tensors(a=(torch.ones(2, 3), "B T"), b=(torch.ones(4), "D"))


@pytest.mark.parametrize("backend,dtypes,match", [
    ("triton", ALL, "unknown backend 'triton'; choose one of 'auto', 'reference', 'torch', 'numba', 'cuda'"),
    ("torch", NO_TORCH, "unknown backend 'torch'; choose one of 'auto', 'reference', 'numba'"),
])
def test_unknown_backend(backend, dtypes, match):
    with pytest.raises(ValueError, match=match):
        resolve_backend(backend, dtypes, {"x": torch.ones(2)})


@pytest.mark.parametrize("backend,inputs,out,error,match", [
    ("numba", xs(2, 3, dtype=torch.float64), None, ValueError,
     r"dtype torch.float64 is not supported by backend 'numba' \(supported: float32\)"),
    ("auto", xs(2, 3), [0.0], TypeError, "out must be a torch.Tensor"),
    ("auto", xs(2, 3), torch.ones(3, 2), ValueError, r"out has shape \(3, 2\), expected \(2, 3\)"),
    ("auto", xs(2, 3), torch.ones(2, 3, dtype=torch.float64), ValueError, "out dtype torch.float64 differs"),
    ("auto", xs(2, 3), torch.ones(2, 3, device="meta"), ValueError, "out is on meta, the inputs on cpu"),
    ("numba", (torch.ones(3, 2).T, torch.ones(2, 3)), None, ValueError, "a must be contiguous for backend"),
    ("numba", xs(2, 3), torch.ones(3, 2).T, ValueError, "out must be contiguous for backend 'numba'"),
    ("numba", (torch.ones(2, 3, requires_grad=True), torch.ones(2, 3)), None, ValueError, "inference only"),
    ("numba", (torch.ones(2, 3, device="meta"),), None, ValueError,
     "backend 'numba' needs CPU tensors, got device meta"),
])
def test_resolve_backend_errors(backend, inputs, out, error, match):
    with pytest.raises(error, match=match):
        resolve_backend(backend, ALL, dict(zip("ab", inputs)), out)


@pytest.mark.skipif(simulator_enabled(), reason="the simulator takes CPU tensors")
def test_cuda_backend_needs_cuda_tensors():
    with pytest.raises(ValueError, match="backend 'cuda' needs CUDA tensors"):
        resolve_backend("cuda", ALL, {"a": torch.ones(2)})


def test_resolve_backend_accepts_grad_for_differentiable_backends_and_no_grad_mode_for_compiled():
    a = torch.ones(2, 3, requires_grad=True)
    assert resolve_backend("torch", ALL, {"a": a}) == "torch"
    with torch.no_grad():
        assert resolve_backend("numba", ALL, {"a": a}) == "numba"


@pytest.mark.parametrize("dtypes,tensors,expected", [
    (ALL, xs(2, 3), "numba"),
    (ALL, xs(2, 3, dtype=torch.float16), "torch"),
    (ALL, (torch.ones(2, 3, requires_grad=True),), "torch"),
    (ALL, (torch.ones(3, 2).T,), "torch"),
    (NO_TORCH, (torch.ones(3, 2).T,), "reference"),  # an op without a "torch" path falls back to its spec
    ({"reference": dispatch.FLOAT_DTYPES}, xs(2, 3), "reference"),
])
def test_auto_choice(dtypes, tensors, expected):
    assert choose_backend(dtypes, dict(zip("ab", tensors))) == expected
    assert resolve_backend("auto", dtypes, dict(zip("ab", tensors))) == expected


def test_auto_skips_a_backend_whose_limit_refuses_the_inputs():
    limits = {"numba": lambda t: "rows <= 4 only" if t["a"].shape[0] > 4 else None}
    assert resolve_backend("auto", ALL, {"a": torch.ones(3)}, limits=limits) == "numba"
    assert resolve_backend("auto", ALL, {"a": torch.ones(5)}, limits=limits) == "torch"
    with pytest.raises(ValueError, match="backend 'numba' cannot run these inputs: rows <= 4 only"):
        resolve_backend("numba", ALL, {"a": torch.ones(5)}, limits=limits)


def test_run_differentiable_copies_into_out_and_compiled_fills_a_new_out():
    x = torch.arange(6.0).view(2, 3)
    kernels = {"torch": lambda a, scale: a * scale, "numba": lambda a, out, scale: out.copy_(a.T * scale)}
    out = torch.full((2, 3), float("nan"))
    assert run("torch", kernels, (x,), out, scale=2.0) is out
    torch.testing.assert_close(out, 2 * x)
    got = run("numba", kernels, (x,), None, out_shape=(3, 2), scale=3.0)
    torch.testing.assert_close(got, 3 * x.T)


def test_kernel_modules_import_numba_only_when_a_kernel_runs():
    code = ("import sys, torch; from minihybrid.kernels.attention import attention; "
            "attention(*(torch.ones(1, 1, 2, 4),) * 3, backend='torch'); assert 'numba' not in sys.modules; "
            "attention(*(torch.ones(1, 1, 2, 4),) * 3, backend='numba'); assert 'numba' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "NUMBA_ENABLE_CUDASIM": "0"})


def test_numba_cpu_run_writes_through_numpy_views():
    calls = []

    def kernel(src, dst, factor):
        calls.append(type(src).__name__)
        dst[:] = src * factor

    x, out = torch.arange(4.0, requires_grad=True), torch.zeros(4)
    numba_cpu.run(kernel, x, out, 2.0)
    assert calls == ["ndarray"]
    torch.testing.assert_close(out, 2 * x.detach())


def test_single_threaded_blas_restores_the_thread_count():
    funcs = numba_cpu._scipy_openblas()
    if funcs is None:
        pytest.skip("scipy's OpenBLAS not found")
    get, _ = funcs
    before = get()
    with numba_cpu.single_threaded_blas():
        assert get() == 1
    assert get() == before


def test_cuda_tensor_device():
    assert numba_cuda.tensor_device() == ("cpu" if simulator_enabled() else "cuda")
