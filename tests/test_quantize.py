"""RTN quantization: the scheme's checks, fitted groups, codes, and the stored weight's round trip."""

import numpy as np
import pytest
import torch

from minihybrid.compress import QuantScheme, fit_groups, quantize_weight
from minihybrid.kernels.quant_matmul.reference import unpack_codes

SCHEMES = [QuantScheme(bits, group, sym) for bits in (4, 8) for group in (32, 64, 128, None)
           for sym in (True, False)]


@pytest.mark.parametrize("scheme", SCHEMES, ids=lambda s: s.name)
def test_round_trip_error_is_at_most_half_a_step(scheme):
    w = torch.randn(7, 256) * torch.linspace(0.1, 3, 256)
    q = quantize_weight(w, scheme)
    assert q.shape == (7, 256) and q.packed.dtype == torch.uint8
    assert q.packed.shape == (7, 256 * scheme.bits // 8)
    step = q.scales.repeat_interleave(q.group_size, dim=1)
    assert ((q.dequantize() - w).abs() <= step / 2 + 1e-6).all()


def test_symmetric_zero_is_the_middle_code_and_asymmetric_covers_the_range():
    w = torch.tensor([[0.0, 1.0, -2.0, 0.5] * 8])
    sym = quantize_weight(w, QuantScheme(4, 32, True))
    assert torch.allclose(sym.mins, -8 * sym.scales)
    assert sym.scales.item() == pytest.approx(4 / 15)  # 2 max|w| / 15
    codes = unpack_codes(sym.packed, 4)
    assert (codes[0, 0::4] == 8).all()  # w = 0 -> the middle code
    asym = quantize_weight(w + 3, QuantScheme(4, 32, False))  # all positive: the range widens to 0
    assert asym.scales.item() == pytest.approx(4 / 15)
    assert asym.mins.item() == 0.0


def test_all_zero_group_gets_scale_one_and_reproduces_zero():
    w = torch.zeros(2, 64)
    w[1, 32:] = torch.randn(32)
    for symmetric in (True, False):
        q = quantize_weight(w, QuantScheme(4, 32, symmetric))
        assert q.scales[0].eq(1).all() and q.scales[1, 0] == 1
        assert q.dequantize()[:, :32].eq(0).all()


def test_int8_is_finer_than_int4_and_smaller_groups_are_finer():
    w = torch.randn(64, 512) * (1 + 5 * torch.rand(1, 512))
    err = {s.name: (quantize_weight(w, s).dequantize() - w).pow(2).mean().item() for s in SCHEMES}
    assert err["int8 g128 sym"] < err["int4 g32 sym"] / 50
    assert err["int4 g32 sym"] < err["int4 g128 sym"] < err["int4 per-channel sym"]


def test_given_scales_are_used():
    w = torch.randn(3, 64)
    scales, mins = fit_groups(w, QuantScheme(8, 32))
    q = quantize_weight(w, QuantScheme(8, 32), scales * 2, mins * 2)
    assert torch.equal(q.scales, scales * 2)


@pytest.mark.parametrize("kwargs, message", [
    ({"bits": 3}, "bits must be one of"),
    ({"bits": 4.0}, "bits must be one of"),
    ({"bits": True}, "bits must be one of"),
    ({"group_size": 48}, "group_size must be one of"),
    ({"group_size": 128.0}, "group_size must be one of"),
])
def test_bad_scheme(kwargs, message):
    with pytest.raises(ValueError, match=message):
        QuantScheme(**kwargs)


def test_scheme_takes_numpy_integers_as_ints_and_refuses_a_non_bool_symmetric():
    scheme = QuantScheme(np.int64(4), np.int32(64))
    assert scheme == QuantScheme(4, 64) and type(scheme.bits) is int and type(scheme.group_size) is int
    with pytest.raises(TypeError, match="symmetric must be True or False"):
        QuantScheme(symmetric="no")


def test_inputs_not_divisible_by_the_group_and_bad_shapes():
    with pytest.raises(ValueError, match="100 inputs do not split into groups of 32"):
        quantize_weight(torch.randn(4, 100), QuantScheme(4, 32))
    with pytest.raises(ValueError, match="do not split into groups of 9"):
        quantize_weight(torch.randn(4, 9), QuantScheme(4, None))  # per-channel int4 needs an even K
    with pytest.raises(ValueError, match=r"must be a non-empty \(N, K\)"):
        quantize_weight(torch.randn(4), QuantScheme())
    with pytest.raises(ValueError, match=r"must be a non-empty \(N, K\)"):
        quantize_weight(torch.empty(0, 64), QuantScheme(4, 32))


def test_non_finite_weights_and_mismatched_scales_are_refused():
    w = torch.randn(4, 64)
    w[1, 3] = float("nan")
    with pytest.raises(ValueError, match="NaN or inf"):
        quantize_weight(w, QuantScheme(4, 32))
    w[1, 3] = 0.0
    with pytest.raises(ValueError, match=r"must be \(4, 2\) for a \(4, 64\) weight in int4 g32 sym"):
        quantize_weight(w, QuantScheme(4, 32), torch.ones(4, 1), torch.zeros(4, 1))
    with pytest.raises(ValueError, match="both scales and mins, or neither"):
        quantize_weight(w, QuantScheme(4, 32), scales=torch.ones(4, 2))
