"""Attention backends vs the PyTorch reference: the Numba CPU kernel on awkward shapes, the "torch" (SDPA)
path with its gradients, and the op's own input checks (the shared ones: test_dispatch.py)."""

import contextlib

import pytest
import torch
from kernels import helpers
from kernels.helpers import ODD_LENGTHS, TOL, assert_close, check_backend, dtype_id, nan_like, randn

from minihybrid.kernels.attention import attention, attention_mask, attention_reference, cpu
from minihybrid.kernels.attention.cpu import attention_cpu


def qkv(b, hq, hkv, tq, tk, d, dtype=torch.float32, seed=0, requires_grad=False):
    return [t.requires_grad_(requires_grad) for t in helpers.qkv(b, hq, hkv, tq, tk, d, dtype, seed)]


def check(backend, q, k, v, **kw):
    return check_backend(attention, attention_reference, (q, k, v), backend, **kw)


# --- "numba" ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=dtype_id)
@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("hq,hkv", [(6, 2), (4, 4)])
@pytest.mark.parametrize("d", [32, 64, 80])
@pytest.mark.parametrize("t", ODD_LENGTHS)
def test_numba_matches_reference(t, d, hq, hkv, causal, dtype):
    check("numba", *qkv(2, hq, hkv, t, t, d, dtype), causal=causal)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=dtype_id)
@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("window", [1, 16, 50])
@pytest.mark.parametrize("t", [63, 257])
def test_numba_window(t, window, causal, dtype):
    check("numba", *qkv(1, 6, 2, t, t, 32, dtype), causal=causal, window=window)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=dtype_id)
@pytest.mark.parametrize("window", [None, 16])
@pytest.mark.parametrize("tq,tk", [(1, 100), (5, 100), (1, 1), (63, 257)])
def test_numba_decode(tq, tk, window, dtype):
    # queries aligned to the end of the keys, as after a prefill
    check("numba", *qkv(2, 6, 2, tq, tk, 64, dtype), causal=True, window=window, scale=0.2)


@pytest.mark.parametrize("causal,window", [(True, None), (False, None), (True, 6), (False, 6)])
def test_numba_small_tiles(causal, window):
    # odd tile sizes: many partial tiles and online-softmax rescalings
    q, k, v = qkv(1, 4, 2, 37, 41, 16, torch.float64)
    out = attention_cpu(q, k, v, nan_like(q), causal, window, None, block_q=7, block_k=5)
    assert_close(out, attention_reference(q, k, v, causal=causal, window=window))


# --- "torch" (SDPA) --------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", list(TOL), ids=dtype_id)
@pytest.mark.parametrize("causal,window", [(True, None), (False, None), (True, 16), (False, 16)])
@pytest.mark.parametrize("hq,hkv", [(6, 2), (4, 4)])
@pytest.mark.parametrize("t", ODD_LENGTHS)
def test_torch_matches_reference(t, hq, hkv, causal, window, dtype):
    check("torch", *qkv(2, hq, hkv, t, t, 32, dtype), causal=causal, window=window)


@pytest.mark.parametrize("window", [None, 1, 16])
@pytest.mark.parametrize("tq,tk", [(1, 100), (5, 100), (1, 1), (63, 257)])
def test_torch_decode(tq, tk, window):
    check("torch", *qkv(2, 6, 2, tq, tk, 64), causal=True, window=window, scale=0.2)


@pytest.mark.parametrize("causal,window,tq", [(True, None, 37), (True, None, 1), (True, 6, 37),
                                              (False, 6, 9)])
def test_torch_gradients_match_reference(causal, window, tq):
    grads = {}
    for backend in ("reference", "torch"):
        q, k, v = qkv(2, 6, 2, tq, 37, 16, torch.float64, requires_grad=True)
        out = attention(q, k, v, causal=causal, window=window, backend=backend)
        out.backward(randn(out.shape, dtype=torch.float64, seed=1)[0])
        grads[backend] = (out, q.grad, k.grad, v.grad)
    for got, expected in zip(grads["torch"], grads["reference"]):
        assert_close(got, expected.detach())


def test_mask_positions():
    # 2 queries at positions 2 and 3 of 4 keys, window 2: each sees itself and the key before
    expected = torch.tensor([[0, 1, 1, 0], [0, 0, 1, 1]], dtype=torch.bool)
    assert torch.equal(attention_mask(2, 4, causal=True, window=2), expected)


# --- "auto" ----------------------------------------------------------------------------------------

@pytest.fixture
def numba_calls(monkeypatch):
    """Records each run of the Numba CPU kernel (attention() looks it up in cpu.py at call time)."""
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
        (lambda t: t.requires_grad_(), contextlib.nullcontext, "torch"),  # autograd: SDPA
        (lambda t: t.transpose(2, 3).contiguous().transpose(2, 3), contextlib.nullcontext, "torch"),
        (lambda t: t.half(), contextlib.nullcontext, "torch"),  # no compiled kernel for float16
    ],
    ids=["float32", "requires-grad-no-grad-mode", "requires-grad", "non-contiguous", "float16"],
)
def test_auto_backend(numba_calls, prepare, mode, expected):
    q, k, v = (prepare(t) for t in qkv(1, 4, 2, 20, 20, 16))
    with mode():
        out = attention(q, k, v)
    assert len(numba_calls) == (expected == "numba")
    assert_close(out, attention_reference(q, k, v))
    if out.requires_grad:  # the differentiable SDPA path ran
        out.sum().backward()
        assert torch.isfinite(q.grad).all()


# --- bad input -------------------------------------------------------------------------------------

def _bad_inputs():
    q, k, v = qkv(1, 4, 2, 8, 8, 16)
    return [
        ("rank", {"q": q[0]}, "q must have rank 4"),
        ("empty", {"q": q[:, :, :0]}, "q has an empty dimension"),
        ("batch", {"k": k.expand(2, -1, -1, -1).contiguous(), "v": v.expand(2, -1, -1, -1).contiguous()},
         "batch size mismatch"),
        ("head-dim", {"k": k[..., :8].contiguous(), "v": v[..., :8].contiguous()}, "head dim mismatch"),
        ("kv-shape", {"v": v[:, :, :4].contiguous()}, "k and v shapes differ"),
        ("gqa", {"q": qkv(1, 3, 2, 8, 8, 16)[0]}, "multiple of kv heads"),
        ("tq>tk", {"k": k[:, :, :4].contiguous(), "v": v[:, :, :4].contiguous()}, "more queries than keys"),
        ("window", {"window": 0}, "window must be >= 1"),
        ("out-shape", {"out": torch.empty(1, 4, 8, 8)}, "out has shape"),
        # the shared checks (test_dispatch.py), as the op reaches them
        ("dtype-mix", {"v": v.double()}, "dtype mismatch"),
        ("device", {"k": k.to("meta")}, "device mismatch"),
        ("dtype-backend", {"q": q.half(), "k": k.half(), "v": v.half()}, "not supported by backend 'numba'"),
        ("contiguous", {"q": q.transpose(2, 3).contiguous().transpose(2, 3)}, "q must be contiguous"),
        ("grad", {"q": q.clone().requires_grad_(True)}, "inference only"),
        ("backend", {"backend": "triton"}, "unknown backend 'triton'; choose one of 'auto', 'reference'"),
    ]


@pytest.mark.parametrize("name,change,match", _bad_inputs(), ids=[case[0] for case in _bad_inputs()])
def test_validation_errors(name, change, match):
    q, k, v = qkv(1, 4, 2, 8, 8, 16)
    args = {"q": q, "k": k, "v": v, "backend": "numba"} | change
    with pytest.raises(ValueError, match=match):
        attention(args.pop("q"), args.pop("k"), args.pop("v"), **args)


@pytest.mark.parametrize("change,match", [
    ({"causal": 1}, "causal must be a bool"),
    ({"window": 2.5}, "window must be None or an int"),
    ({"scale": "0.1"}, "scale must be None or a real number"),
    ({"backend": None}, "backend must be a str"),
])
def test_option_type_errors(change, match):
    with pytest.raises(TypeError, match=match):
        attention(*qkv(1, 2, 2, 4, 4, 8), **change)
