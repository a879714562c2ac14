"""SSD scan backends vs the token-by-token reference: the Numba CPU kernel and the chunked "torch" form on odd
lengths, B/C group counts and chunk sizes, with and without an initial state, the final state included; the
chunked form's gradients; and the op's own input checks (the shared ones: test_dispatch.py).

Shapes stay small (batch 2, T <= 257) because the reference is a Python loop over the tokens.
"""

import contextlib

import pytest
import torch
from kernels.helpers import TOL, assert_close, dtype_id, nan_like, randn

from minihybrid.kernels.scan import cpu, ssd_reference, ssd_scan
from minihybrid.kernels.scan.speed import make_inputs

BATCH, HEADS, HEAD_DIM, D_STATE = 2, 4, 16, 8


def inputs(length, groups=1, dtype=torch.float32, head_dim=HEAD_DIM, d_state=D_STATE):
    """[x, dt, A, B, C] at the test shape, in Mamba-2's value ranges (speed.make_inputs)."""
    return make_inputs(length, batch=BATCH, heads=HEADS, head_dim=head_dim, groups=groups, d_state=d_state,
                       dtype=dtype)


def state(x, B):
    """A random state (batch, H, P, N) for inputs x (batch, T, H, P) and B (batch, T, G, N)."""
    batch, _, heads, head_dim = x.shape
    return randn((batch, heads, head_dim, B.shape[-1]), dtype=x.dtype, seed=1)[0]


def check(backend, args, initial_state=None, **options):
    """ssd_scan fills NaN-prefilled (y, final state) outs, and both match the reference."""
    y_out, state_out = nan_like(args[0]), nan_like(state(args[0], args[3]))
    y, final = ssd_scan(*args, initial_state=initial_state, backend=backend, out=(y_out, state_out),
                        **options)
    assert y is y_out and final is state_out
    y_ref, final_ref = ssd_reference(*args, initial_state)
    assert_close(y, y_ref)
    assert_close(final, final_ref)


# --- "numba" ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=dtype_id)
@pytest.mark.parametrize("with_state", [False, True], ids=["zero-state", "initial-state"])
@pytest.mark.parametrize("groups", [1, 2, HEADS])
@pytest.mark.parametrize("length", [1, 63, 65, 127, 257])
def test_numba_matches_reference(length, groups, with_state, dtype):
    args = inputs(length, groups, dtype)
    check("numba", args, state(args[0], args[3]) if with_state else None)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=dtype_id)
@pytest.mark.parametrize("head_dim,d_state", [(5, 70), (64, 64), (3, 1)])
def test_numba_state_sizes(head_dim, d_state, dtype):
    # N = 64 and 70 run the unrolled vector loop over N (32 floats a step), 70 also its remainder; N = 8
    # (above) and N = 1 only the remainder
    args = inputs(33, 2, dtype, head_dim, d_state)
    check("numba", args, state(args[0], args[3]))


# --- "torch" (chunked) -----------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", list(TOL), ids=dtype_id)
@pytest.mark.parametrize("with_state", [False, True], ids=["zero-state", "initial-state"])
@pytest.mark.parametrize("groups", [1, 2, HEADS])
@pytest.mark.parametrize("chunk_size", [1, 16, 64, 100, 300])  # none divides 257; 300 > T: a single chunk
def test_torch_matches_reference(chunk_size, groups, with_state, dtype):
    args = inputs(257, groups, dtype)
    check("torch", args, state(args[0], args[3]) if with_state else None, chunk_size=chunk_size)


@pytest.mark.parametrize("length,chunk_size", [(1, 64), (63, 16), (64, 16), (65, 64)])
def test_torch_lengths(length, chunk_size):
    args = inputs(length, 2, torch.float64)
    check("torch", args, state(args[0], args[3]), chunk_size=chunk_size)


@pytest.mark.parametrize("with_state", [False, True], ids=["zero-state", "initial-state"])
def test_torch_gradients_match_reference(with_state):
    grads = {}
    for backend in ("reference", "torch"):
        args = [t.requires_grad_() for t in inputs(37, 2, torch.float64)]
        initial_state = state(args[0], args[3]).requires_grad_() if with_state else None
        y, final = ssd_scan(*args, initial_state=initial_state, chunk_size=16, backend=backend)
        gy, gs = randn(y.shape, final.shape, dtype=torch.float64, seed=2)
        ((y * gy).sum() + (final * gs).sum()).backward()
        leaves = args + ([initial_state] if with_state else [])
        grads[backend] = [y, final] + [t.grad for t in leaves]
    for got, expected in zip(grads["torch"], grads["reference"]):
        assert_close(got, expected.detach())


# --- "auto" ----------------------------------------------------------------------------------------

@pytest.fixture
def numba_calls(monkeypatch):
    """Records each run of the Numba CPU kernel (ssd_scan looks it up in cpu.py at call time)."""
    calls, kernel = [], cpu.ssd_cpu

    def recording(*args):
        calls.append(args)
        return kernel(*args)

    monkeypatch.setattr(cpu, "ssd_cpu", recording)
    return calls


@pytest.mark.parametrize("prepare, mode, expected", [
    (lambda t: t, contextlib.nullcontext, "numba"),
    (lambda t: t.requires_grad_(), torch.no_grad, "numba"),  # no autograd in no_grad mode
    (lambda t: t.requires_grad_(), contextlib.nullcontext, "torch"),  # autograd: the chunked form
    (lambda t: t.half(), contextlib.nullcontext, "torch"),  # no compiled kernel for float16
], ids=["float32", "requires-grad-no-grad-mode", "requires-grad", "float16"])
def test_auto_backend(numba_calls, prepare, mode, expected):
    args = [prepare(t) for t in inputs(20, 2)]
    with mode():
        y, final = ssd_scan(*args)
    assert len(numba_calls) == (expected == "numba")
    y_ref, final_ref = ssd_reference(*args)
    assert_close(y, y_ref)
    assert_close(final, final_ref)


# --- bad input -------------------------------------------------------------------------------------

def _bad_inputs():
    x, dt, A, B, C = inputs(8, 2)
    _, _, _, B3, C3 = inputs(8, 3)
    y_out, state_out = nan_like(x), nan_like(state(x, B))
    return [
        ("x-rank", {"x": x[0]}, ValueError, "x must have rank 4"),
        ("dt-shape", {"dt": dt[:, :4].contiguous()}, ValueError, r"dt must have shape \(batch, T, H\)"),
        ("A-shape", {"A": A[:2].contiguous()}, ValueError, r"A must have shape \(H,\) = \(4,\), got \(2,\)"),
        ("B-C-shapes", {"C": C[..., :4].contiguous()}, ValueError, "B and C shapes differ"),
        ("B-C-length", {"B": B[:, :4].contiguous(), "C": C[:, :4].contiguous()}, ValueError,
         r"B and C must have shape \(batch, T, G, N\)"),
        ("groups", {"B": B3, "C": C3}, ValueError, "heads H=4 must be a multiple of the B/C groups G=3"),
        ("initial-state-batch", {"initial_state": state(x[:1], B)}, ValueError,
         "initial_state must have shape .* another batch size"),
        ("chunk-size", {"chunk_size": 0}, ValueError, "chunk_size must be an int >= 1, got 0"),
        ("numba-float16", {"x": x.half(), "dt": dt.half(), "A": A.half(), "B": B.half(), "C": C.half()},
         ValueError, "dtype torch.float16 is not supported by backend 'numba'"),
        ("dtype-mix", {"A": A.double()}, ValueError, "dtype mismatch"),
        ("contiguous", {"x": x.transpose(2, 3).contiguous().transpose(2, 3)}, ValueError,
         "x must be contiguous"),
        ("out-not-pair", {"out": y_out}, TypeError, r"out must be a \(y, final_state\) tuple"),
        ("out-triple", {"out": (y_out, state_out, y_out)}, TypeError, r"out must be a \(y, final_state\)"),
        ("out-y-shape", {"out": (y_out[:1], state_out)}, ValueError, "out has shape"),
        ("out-state-shape", {"out": (y_out, state_out[:1])}, ValueError, "out has shape"),
        ("out-state-type", {"out": (y_out, 0.0)}, TypeError, "out must be a torch.Tensor"),
        ("backend", {"backend": "triton"}, ValueError, "unknown backend 'triton'"),
    ]


@pytest.mark.parametrize("name,change,error,match", _bad_inputs(), ids=[case[0] for case in _bad_inputs()])
def test_validation_errors(name, change, error, match):
    x, dt, A, B, C = inputs(8, 2)
    args = {"x": x, "dt": dt, "A": A, "B": B, "C": C, "backend": "numba"} | change
    tensors = [args.pop(key) for key in ("x", "dt", "A", "B", "C")]
    with pytest.raises(error, match=match):
        ssd_scan(*tensors, **args)
