"""Skinny matmul: the Numba CPU kernel against the reference on odd shapes (M, K and N off the tile sizes,
leading dims flattened, NaN-prefilled outputs), its bitwise batch invariance, the unchecked entry point, the
reference's autograd, and the op's input checks."""

import pytest
import torch
from kernels.helpers import assert_close, nan_like, randn

from minihybrid.kernels.skinny_matmul import skinny_matmul, skinny_matmul_reference
from minihybrid.kernels.skinny_matmul.cpu import TILE_N, skinny_matmul_cpu

ROWS = (1, 2, 3, 5, 8, 9, 17)
INPUTS = (1, 63, 100, 257, 576)
OUTPUTS = (1, 7, 130)


def check(x, w, backend="numba"):
    """The backend fills a NaN-prefilled out that matches the reference (computed in float64)."""
    out = torch.full((*x.shape[:-1], w.shape[0]), float("nan"))
    got = skinny_matmul(x, w, backend=backend, out=out)
    assert got is out
    torch.testing.assert_close(out.double(), skinny_matmul_reference(x.double(), w.double()),
                               atol=1e-4, rtol=1e-4)
    return out


@pytest.mark.parametrize("rows", ROWS)
@pytest.mark.parametrize("k", INPUTS)
def test_numba_matches_reference(k, rows):
    for n in OUTPUTS:
        check(*randn((rows, k), (n, k), seed=rows + k + n))


@pytest.mark.parametrize("shape", [(2, 3), (1, 1, 5), ()], ids=["rank3", "rank4", "rank1"])
def test_leading_dims_are_flattened(shape):
    x, w = randn((*shape, 100), (TILE_N + 1, 100))
    assert check(x, w).shape == (*shape, TILE_N + 1)


@pytest.mark.parametrize("k", INPUTS)
def test_each_row_is_bitwise_the_same_for_any_number_of_rows(k):
    x, w = randn((max(ROWS), k), (130, k), seed=k)
    singles = torch.cat([skinny_matmul(row[None], w) for row in x])
    for rows in range(1, max(ROWS) + 1):
        assert torch.equal(skinny_matmul(x[:rows], w), singles[:rows]), rows
        assert torch.equal(skinny_matmul(x[rows - 1:], w), singles[rows - 1:]), rows  # rows at new places


def test_nan_and_inf_propagate():
    x, w = randn((3, 64), (9, 64))
    x[1, 5], w[4, 7] = float("nan"), float("inf")
    expected = skinny_matmul_reference(x, w)
    got = skinny_matmul(x, w)
    assert torch.equal(got.isnan(), expected.isnan()) and torch.equal(got.isinf(), expected.isinf())


def test_unchecked_entry_point_fills_out():
    x, w = randn((2, 3, 63), (130, 63))
    out = nan_like(torch.empty(2, 3, 130))
    assert skinny_matmul_cpu(x, w, out) is out
    assert_close(out, skinny_matmul_reference(x, w))


def test_auto_picks_numba_and_reference_takes_the_rest():
    x, w = randn((2, 64), (7, 64))
    expected = skinny_matmul_reference(x, w)
    assert torch.equal(skinny_matmul(x, w), skinny_matmul(x, w, backend="numba"))
    y = skinny_matmul(x.double(), w.double())
    assert y.dtype == torch.float64
    assert_close(y.float(), expected)
    assert_close(skinny_matmul(x.T.contiguous().T, w), expected)  # non-contiguous: reference


def test_reference_gradient_through_x_and_w():
    x, w = randn((3, 64), (7, 64))
    x.requires_grad_()
    w.requires_grad_()
    skinny_matmul(x, w).sum().backward()  # auto: reference
    assert_close(x.grad, w.detach().sum(0).expand(3, -1))
    assert_close(w.grad, x.detach().sum(0).expand(7, -1))


# --- bad input -------------------------------------------------------------------------------------

def _bad_inputs():
    x, w = randn((2, 64), (7, 64))
    return [
        ("x-type", {"x": [[1.0] * 64]}, TypeError, "x must be a torch.Tensor"),
        ("w-type", {"w": 1.0}, TypeError, "w must be a torch.Tensor"),
        ("backend-type", {"backend": None}, TypeError, "backend must be a str"),
        ("out-type", {"out": [0.0]}, TypeError, "out must be a torch.Tensor"),
        ("x-rank0", {"x": torch.tensor(1.0)}, ValueError, r"x must have shape \(\.\.\., K\)"),
        ("w-rank", {"w": w[0]}, ValueError, r"w must have rank 2 \(N, K\)"),
        ("x-empty", {"x": x[:0]}, ValueError, "x has an empty dimension"),
        ("w-empty", {"w": w[:0]}, ValueError, "w has an empty dimension"),
        ("k-mismatch", {"x": x[:, :63]}, ValueError, "x has K = 63 inputs but w"),
        ("dtype-mismatch", {"w": w.double()}, ValueError, "dtype mismatch"),
        ("dtype", {"x": x.double(), "w": w.double()}, ValueError,
         "dtype torch.float64 is not supported by backend 'numba'"),
        ("device", {"w": w.to("meta")}, ValueError, "device mismatch"),
        ("contiguous-x", {"x": torch.randn(64, 2).T}, ValueError, "x must be contiguous for backend 'numba'"),
        ("contiguous-w", {"w": w.T.contiguous().T}, ValueError, "w must be contiguous"),
        ("out-shape", {"out": torch.empty(2, 8)}, ValueError, r"out has shape \(2, 8\), expected \(2, 7\)"),
        ("out-dtype", {"out": torch.empty(2, 7, dtype=torch.float64)}, ValueError, "out dtype torch.float64"),
        ("backend", {"backend": "torch"}, ValueError, "unknown backend 'torch'"),
    ]


@pytest.mark.parametrize("name,change,error,match", _bad_inputs(), ids=[case[0] for case in _bad_inputs()])
def test_validation_errors(name, change, error, match):
    x, w = randn((2, 64), (7, 64))
    args = {"x": x, "w": w, "backend": "numba"} | change
    with pytest.raises(error, match=match):
        skinny_matmul(args.pop("x"), args.pop("w"), **args)


def test_numba_refuses_other_devices_and_autograd():
    x, w = randn((2, 64), (7, 64))
    with pytest.raises(ValueError, match="backend 'numba' needs CPU tensors"):
        skinny_matmul(x.to("meta"), w.to("meta"), backend="numba")
    with pytest.raises(ValueError, match="backend 'numba' is inference only"):
        skinny_matmul(x, w.requires_grad_(), backend="numba")
