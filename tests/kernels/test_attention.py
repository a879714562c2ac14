"""Attention kernels vs the PyTorch reference: the Numba CPU kernel on awkward shapes, and the dispatcher.

Outputs are pre-filled with NaN so that any element a kernel forgets to write fails the comparison.
"""

import contextlib

import pytest
import torch
import torch.nn.functional as F

from minihybrid.kernels.attention import attention, attention_mask, attention_reference, cpu
from minihybrid.kernels.attention.cpu import attention_cpu
from minihybrid.runtime import simulator_enabled

TOL = {  # per-dtype tolerance of a fast path against the reference
    torch.float32: {"atol": 2e-5, "rtol": 1e-4},
    torch.float64: {"atol": 1e-12, "rtol": 1e-10},
}
DTYPES = list(TOL)


def _qkv(b, hq, hkv, tq, tk, d, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(b, hq, tq, d, generator=g, dtype=dtype)
    k = torch.randn(b, hkv, tk, d, generator=g, dtype=dtype)
    v = torch.randn(b, hkv, tk, d, generator=g, dtype=dtype)
    return q, k, v


def _check_numba(q, k, v, **kw):
    out = torch.full_like(q, float("nan"))
    got = attention(q, k, v, backend="numba", out=out, **kw)
    assert got is out
    torch.testing.assert_close(out, attention_reference(q, k, v, **kw), **TOL[q.dtype])


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda dt: str(dt).removeprefix("torch."))
@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("hq,hkv", [(6, 2), (4, 4)])
@pytest.mark.parametrize("d", [32, 64, 80])
@pytest.mark.parametrize("t", [1, 63, 100, 257])
def test_numba_matches_reference(t, d, hq, hkv, causal, dtype):
    _check_numba(*_qkv(2, hq, hkv, t, t, d, dtype), causal=causal)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda dt: str(dt).removeprefix("torch."))
@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("window", [1, 16, 50])
@pytest.mark.parametrize("t", [63, 257])
def test_numba_window(t, window, causal, dtype):
    _check_numba(*_qkv(1, 6, 2, t, t, 32, dtype), causal=causal, window=window)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda dt: str(dt).removeprefix("torch."))
@pytest.mark.parametrize("window", [None, 16])
@pytest.mark.parametrize("tq,tk", [(1, 100), (5, 100), (1, 1), (63, 257)])
def test_numba_decode(tq, tk, window, dtype):
    # queries aligned to the end of the keys, as after a prefill
    _check_numba(*_qkv(2, 6, 2, tq, tk, 64, dtype), causal=True, window=window, scale=0.2)


@pytest.mark.parametrize("causal,window", [(True, None), (False, None), (True, 6), (False, 6)])
def test_numba_small_tiles(causal, window):
    # odd tile sizes: many partial tiles and online-softmax rescalings
    q, k, v = _qkv(1, 4, 2, 37, 41, 16, torch.float64)
    out = torch.full_like(q, float("nan"))
    attention_cpu(q.numpy(), k.numpy(), v.numpy(), out.numpy(), causal, window, None, block_q=7, block_k=5)
    torch.testing.assert_close(out, attention_reference(q, k, v, causal=causal, window=window),
                               **TOL[torch.float64])


def test_mask_positions():
    # 2 queries at positions 2 and 3 of 4 keys, window 2: each sees itself and the key before
    expected = torch.tensor([[0, 1, 1, 0], [0, 0, 1, 1]], dtype=torch.bool)
    assert torch.equal(attention_mask(2, 4, causal=True, window=2), expected)


def test_torch_backend_matches_sdpa():
    q, k, v = _qkv(2, 4, 4, 33, 33, 16, torch.float64)
    ref = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    torch.testing.assert_close(attention(q, k, v, backend="torch"), ref, atol=1e-12, rtol=1e-10)
    q, k, v = _qkv(2, 6, 2, 1, 20, 16, torch.float64)  # decode with GQA: no mask
    ref = F.scaled_dot_product_attention(q, k, v, enable_gqa=True)
    torch.testing.assert_close(attention(q, k, v, backend="torch"), ref, atol=1e-12, rtol=1e-10)


@pytest.fixture
def numba_calls(monkeypatch):
    """Records each run of the Numba CPU kernel (attention() imports it from cpu.py at call time)."""
    calls = []

    def recording(*args, **kwargs):
        calls.append(args)
        return attention_cpu(*args, **kwargs)

    monkeypatch.setattr(cpu, "attention_cpu", recording)
    return calls


@pytest.mark.parametrize(
    "prepare, mode, expected",
    [
        (lambda t: t, contextlib.nullcontext, "numba"),
        (lambda t: t.requires_grad_(), torch.no_grad, "numba"),  # no autograd in no_grad mode
        (lambda t: t.requires_grad_(), contextlib.nullcontext, "torch"),  # autograd needs the reference
        (lambda t: t.transpose(2, 3).contiguous().transpose(2, 3), contextlib.nullcontext, "torch"),
        (lambda t: t.half(), contextlib.nullcontext, "torch"),  # no fast path for float16
    ],
    ids=["float32", "requires-grad-no-grad-mode", "requires-grad", "non-contiguous", "float16"],
)
def test_auto_backend(numba_calls, prepare, mode, expected):
    q, k, v = (prepare(t) for t in _qkv(1, 4, 2, 20, 20, 16))
    with mode():
        out = attention(q, k, v)
    assert len(numba_calls) == (expected == "numba")
    torch.testing.assert_close(out, attention_reference(q, k, v), **TOL.get(q.dtype, {}))
    if out.requires_grad:  # the differentiable reference ran
        out.sum().backward()
        assert torch.isfinite(q.grad).all()


def _bad_inputs():
    q, k, v = _qkv(1, 4, 2, 8, 8, 16)
    return [
        ("rank", {"q": q[0]}, "rank 4"),
        ("batch", {"k": k.expand(2, -1, -1, -1).contiguous(), "v": v.expand(2, -1, -1, -1).contiguous()},
         "batch size mismatch"),
        ("head-dim", {"k": k[..., :8].contiguous(), "v": v[..., :8].contiguous()}, "head dim mismatch"),
        ("kv-shape", {"v": v[:, :, :4].contiguous()}, "k and v shapes differ"),
        ("gqa", {"q": _qkv(1, 3, 2, 8, 8, 16)[0]}, "multiple of kv heads"),
        ("tq>tk", {"k": k[:, :, :4].contiguous(), "v": v[:, :, :4].contiguous()}, "more queries than keys"),
        ("dtype-mix", {"v": v.double()}, "dtype mismatch"),
        ("dtype-backend", {"q": q.half(), "k": k.half(), "v": v.half()}, "not supported by backend 'numba'"),
        ("contiguous", {"q": q.transpose(2, 3).contiguous().transpose(2, 3)}, "q must be contiguous"),
        ("device", {"k": k.to("meta")}, "device mismatch"),
        ("window", {"window": 0}, "window must be >= 1"),
        ("out-shape", {"out": torch.empty(1, 4, 8, 8)}, "out has shape"),
        ("out-dtype", {"out": torch.empty(1, 4, 8, 16, dtype=torch.float64)}, "out dtype"),
        ("backend", {"backend": "triton"}, "unknown backend 'triton'; choose one of 'auto', 'torch'"),
        ("grad", {"q": q.clone().requires_grad_(True)}, "inference only"),
    ]


@pytest.mark.parametrize("name,change,match", _bad_inputs(), ids=[case[0] for case in _bad_inputs()])
def test_validation_errors(name, change, match):
    q, k, v = _qkv(1, 4, 2, 8, 8, 16)
    args = {"q": q, "k": k, "v": v, "backend": "numba"} | change
    with pytest.raises(ValueError, match=match):
        attention(args.pop("q"), args.pop("k"), args.pop("v"), **args)


@pytest.mark.skipif(simulator_enabled(), reason="the simulator takes CPU tensors")
def test_cuda_backend_rejects_cpu_tensors():
    with pytest.raises(ValueError, match="needs CUDA tensors"):
        attention(*_qkv(1, 2, 2, 4, 4, 8), backend="cuda")
