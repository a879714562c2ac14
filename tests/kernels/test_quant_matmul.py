"""Quantized matmul: the stored format (pack/unpack, nibble order), the Numba CPU kernel against the reference
on awkward shapes (every group size, 4 and 8 bits, symmetric and asymmetric mins, the one-row GEMV, the
tiled kernel and the dequantize + BLAS path on either side of TILED_ROWS), the reference's autograd, and the
op's input checks."""

import pytest
import torch
from kernels.helpers import assert_close

from minihybrid.kernels.quant_matmul import (
    dequantize,
    pack_codes,
    quant_matmul,
    quant_matmul_reference,
    unpack_codes,
)
from minihybrid.kernels.quant_matmul.cpu import TILED_ROWS, dequantize_cpu, quant_matmul_cpu

ROWS = (1, 2, 3, 7, 8, 9, 33, 129)
OUTPUTS = (1, 7, 63, 100, 257)
INPUTS = (32, 64, 96, 192, 384, 576)
GROUPS = (32, 64, 128, None)  # None: per-channel (group_size = K)


def weight(n, k, bits, group_size, symmetric=False, seed=0):
    """packed codes, scales, mins of a random (n, k) weight: codes from torch.randint, scales so that
    weights are about [-0.5, 0.5], mins the middle code (symmetric) or a random offset."""
    g = torch.Generator().manual_seed(seed)
    codes = torch.randint(0, 2**bits, (n, k), generator=g)
    scales = (torch.rand(n, k // group_size, generator=g) + 0.5) / 2**bits
    mins = -scales * 2 ** (bits - 1) if symmetric else torch.rand(n, k // group_size, generator=g) - 0.75
    return pack_codes(codes, bits), scales, mins


def inputs(shape, k, n, bits, group_size, symmetric=False, seed=0):
    g = torch.Generator().manual_seed(seed + 1)
    return torch.randn(*shape, k, generator=g), *weight(n, k, bits, group_size, symmetric, seed)


def check(x, packed, scales, mins, bits, group_size, backend="numba"):
    """The backend fills a NaN-prefilled out that matches the reference; returns it."""
    out = torch.full((*x.shape[:-1], packed.shape[0]), float("nan"))
    got = quant_matmul(x, packed, scales, mins, bits=bits, group_size=group_size, backend=backend, out=out)
    assert got is out
    expected = quant_matmul_reference(x.double(), packed, scales, mins, bits, group_size)
    torch.testing.assert_close(out.double(), expected, atol=1e-4, rtol=1e-4)
    return out


# --- the stored format -----------------------------------------------------------------------------

def test_nibble_order_low_nibble_is_the_even_input():
    packed = torch.tensor([[0x21, 0xF0]], dtype=torch.uint8)
    assert unpack_codes(packed, 4).tolist() == [[1, 2, 0, 15]]
    assert pack_codes(torch.tensor([[1, 2, 0, 15]]), 4).tolist() == [[0x21, 0xF0]]


@pytest.mark.parametrize("bits", [4, 8])
def test_pack_unpack_round_trip(bits):
    codes = torch.randint(0, 2**bits, (7, 96), generator=torch.Generator().manual_seed(0))
    packed = pack_codes(codes, bits)
    assert packed.dtype == torch.uint8 and packed.shape == (7, 96 * bits // 8)
    assert torch.equal(unpack_codes(packed, bits), codes.to(torch.uint8))


@pytest.mark.parametrize("bits", [4, 8])
def test_dequantize_cpu_matches_reference(bits):
    packed, scales, mins = weight(63, 192, bits, 64)
    torch.testing.assert_close(dequantize_cpu(packed, scales, mins, bits),
                               dequantize(packed, scales, mins, bits, 64))


# --- Numba vs reference ----------------------------------------------------------------------------

@pytest.mark.parametrize("rows", ROWS)
@pytest.mark.parametrize("group", GROUPS, ids=lambda g: f"g{g or 'K'}")
@pytest.mark.parametrize("bits", [4, 8])
def test_numba_matches_reference(bits, group, rows):
    for i, k in enumerate(kk for kk in INPUTS if group is None or kk % group == 0):
        for j, n in enumerate(OUTPUTS):
            gs = group or k
            check(*inputs((rows,), k, n, bits, gs, symmetric=(i + j) % 2 == 0, seed=i + j), bits, gs)


@pytest.mark.parametrize("shape", [(2, 3), (3, 43), (1, 1, 2)], ids=["tiled", "blas", "rank4"])
def test_leading_batch_dims(shape):
    x, packed, scales, mins = inputs(shape, 64, 7, 4, 32)
    assert check(x, packed, scales, mins, 4, 32).shape == (*shape, 7)


def test_both_paths_around_tiled():
    x, packed, scales, mins = inputs((TILED_ROWS + 1,), 128, 33, 4, 32)
    fused = torch.stack([check(row[None], packed, scales, mins, 4, 32)[0] for row in x])
    assert_close(check(x, packed, scales, mins, 4, 32), fused)


@pytest.mark.parametrize("bits", [4, 8])
def test_tiled_kernel_gives_each_row_the_same_bits_for_any_row_count(bits):
    x, packed, scales, mins = inputs((TILED_ROWS,), 192, 37, bits, 64)
    full = check(x, packed, scales, mins, bits, 64)
    for m in (2, 3, 7, 8, 33, TILED_ROWS - 1):
        assert torch.equal(check(x[:m], packed, scales, mins, bits, 64), full[:m])


def test_unchecked_entry_point_fills_out():
    x, packed, scales, mins = inputs((3,), 96, 100, 8, 32)
    out = torch.full((3, 100), float("nan"))
    assert quant_matmul_cpu(x, packed, scales, mins, out, 8, 32) is out
    assert_close(out, quant_matmul_reference(x, packed, scales, mins, 8, 32))


def test_auto_picks_numba_and_reference_takes_other_dtypes():
    x, packed, scales, mins = inputs((2,), 64, 7, 4, 32)
    expected = quant_matmul_reference(x, packed, scales, mins, 4, 32)
    assert_close(quant_matmul(x, packed, scales, mins, bits=4, group_size=32), expected)
    y = quant_matmul(x.double(), packed, scales, mins, bits=4, group_size=32)
    assert y.dtype == torch.float64
    assert_close(y.float(), expected)


def test_reference_gradient_through_x():
    x, packed, scales, mins = inputs((3,), 64, 7, 4, 32)
    x.requires_grad_()
    quant_matmul(x, packed, scales, mins, bits=4, group_size=32).sum().backward()  # auto: reference
    assert_close(x.grad, dequantize(packed, scales, mins, 4, 32).sum(0).expand(3, -1))


# --- bad input -------------------------------------------------------------------------------------

def _bad_inputs():
    x, packed, scales, mins = inputs((2,), 64, 7, 4, 32)
    return [
        ("bits", {"bits": 2}, ValueError, "bits must be 4 or 8, got 2"),
        ("bits-bool", {"bits": True}, ValueError, "bits must be 4 or 8"),
        ("group-int", {"group_size": 0}, ValueError, "group_size must be an int >= 1"),
        ("group-divides", {"group_size": 48}, ValueError, "group_size 48 must divide K = 64"),
        ("group-even", {"group_size": 1}, ValueError, "must divide K = 64 and be even for 4 bits"),
        ("packed-dtype", {"packed": packed.to(torch.int32)}, ValueError, "packed must be .* uint8 tensor"),
        ("packed-rank", {"packed": packed[0]}, ValueError, r"packed must be .* \(N, K // 2\)"),
        ("packed-bits8", {"bits": 8}, ValueError, r"scales must be float32 .* = \(7, 1\),"),
        ("scales-dtype", {"scales": scales.double()}, ValueError, "scales must be float32"),
        ("scales-shape", {"scales": scales[:, :1]}, ValueError, r"= \(7, 2\), got torch.float32 of shape"),
        ("mins-shape", {"mins": mins[:3]}, ValueError, "mins must be float32"),
        ("x-width", {"x": x[:, :32]}, ValueError, r"x must be non-empty \(\.\.\., K\) with K = 64"),
        ("x-empty", {"x": x[:0]}, ValueError, "x must be non-empty"),
        ("x-dtype", {"x": x.double()}, ValueError, "dtype torch.float64 is not supported by backend 'numba'"),
        ("device", {"scales": scales.to("meta")}, ValueError, "device mismatch"),
        ("contiguous-x", {"x": torch.randn(64, 2).T}, ValueError, "x must be contiguous for backend 'numba'"),
        ("contiguous-w", {"packed": packed.T.contiguous().T}, ValueError, "packed must be contiguous"),
        ("out-shape", {"out": torch.empty(2, 8)}, ValueError, r"out has shape \(2, 8\), expected \(2, 7\)"),
        ("backend", {"backend": "torch"}, ValueError, "unknown backend 'torch'"),
        ("x-type", {"x": [[1.0] * 64]}, TypeError, "x must be a torch.Tensor"),
        ("scales-type", {"scales": 1.0}, TypeError, "scales must be a torch.Tensor"),
    ]


@pytest.mark.parametrize("name,change,error,match", _bad_inputs(), ids=[case[0] for case in _bad_inputs()])
def test_validation_errors(name, change, error, match):
    x, packed, scales, mins = inputs((2,), 64, 7, 4, 32)
    args = {"x": x, "packed": packed, "scales": scales, "mins": mins, "bits": 4, "group_size": 32,
            "backend": "numba"} | change
    with pytest.raises(error, match=match):
        quant_matmul(args.pop("x"), args.pop("packed"), args.pop("scales"), args.pop("mins"), **args)


def test_compiled_backend_refuses_autograd():
    x, packed, scales, mins = inputs((2,), 64, 7, 4, 32)
    with pytest.raises(ValueError, match="backend 'numba' is inference only"):
        quant_matmul(x.requires_grad_(), packed, scales, mins, bits=4, group_size=32, backend="numba")
