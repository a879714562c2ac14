"""Graded tests for exercise set 02: Based's Taylor feature map and linear attention, the non-approximate
variant's same-token scores and causal softmax average, and the paper's layer configurations.

Each test compares your answer with an independent computation (the quadratic form written out, a loop of
dot products, torch.softmax over a causally masked matrix, the paper's Table 11 written out by hand) or
checks a property, on awkward shapes: one token, lengths like 7 and 65, feature dims 1, 3 and 16, scores in
the thousands. Run them with

    pytest tests/graded/test_ex02.py          (MINIHYBRID_IMPL=solutions to run the reference answers)
"""

import math

import adapters
import pytest
import torch

from minihybrid.patterns import configuration_pattern


def graded(points: int) -> pytest.MarkDecorator:
    return pytest.mark.graded(exercise="ex02", points=points)


@pytest.fixture
def ex02():
    """The ex02 functions under test (yours, or what MINIHYBRID_IMPL selects), through tests/adapters.py."""
    return adapters.load("ex02")


def randn(*shape: int, seed: int = 0, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


# The Taylor feature map


@graded(1)
@pytest.mark.parametrize("f", [1, 3, 16])
def test_taylor_features_dot_product_is_the_second_order_expansion(ex02, f):
    """phi(q) . phi(k) = 1 + s + s^2/2 with s = q . k / sqrt(f), for every pair of rows."""
    q, k = randn(2, 5, f), randn(2, 5, f, seed=1)
    phi_q, phi_k = ex02.taylor_features(q), ex02.taylor_features(k)
    assert phi_q.shape == (2, 5, 1 + f + f * f)
    s = q @ k.transpose(-1, -2) / math.sqrt(f)  # (2, 5, 5): every query row against every key row
    torch.testing.assert_close(phi_q @ phi_k.transpose(-1, -2), 1 + s + s**2 / 2)


@graded(1)
def test_taylor_features_layout(ex02):
    """[1, x / f^(1/4), x[a] x[b] / (sqrt(2) sqrt(f)) at 1 + f + a f + b], entry by entry."""
    f = 3
    x = randn(4, f, seed=2)
    phi = ex02.taylor_features(x)
    assert phi.shape == (4, 1 + f + f * f)
    for row in range(4):
        expected = [1.0] + [x[row, a].item() / f**0.25 for a in range(f)]
        expected += [x[row, a].item() * x[row, b].item() / (math.sqrt(2) * math.sqrt(f))
                     for a in range(f) for b in range(f)]
        torch.testing.assert_close(phi[row], torch.tensor(expected, dtype=torch.float64))


@graded(1)
def test_taylor_features_any_leading_dims_and_dtype(ex02):
    x = randn(2, 3, 4, 5, dtype=torch.float32)
    phi = ex02.taylor_features(x)
    assert phi.shape == (2, 3, 4, 31) and phi.dtype == torch.float32
    torch.testing.assert_close(phi.flatten(0, 2), ex02.taylor_features(x.flatten(0, 2)))
    single = ex02.taylor_features(torch.tensor([2.0], dtype=torch.float64))  # f = 1: [1, x, x^2 / sqrt(2)]
    torch.testing.assert_close(single, torch.tensor([1.0, 2.0, 4.0 / math.sqrt(2)], dtype=torch.float64))


# Taylor attention in linear time


def taylor_by_hand(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """The quadratic form, one query at a time: weights 1 + s + s^2/2 over the keys 0..i."""
    f, length = q.shape[-1], q.shape[-2]
    out = torch.empty(*q.shape[:-1], v.shape[-1], dtype=q.dtype)
    for i in range(length):
        s = (q[:, :, i : i + 1] * k[:, :, : i + 1]).sum(-1) / math.sqrt(f)  # (B, H, i + 1)
        w = 1 + s + s**2 / 2
        out[:, :, i] = (w[..., None] * v[:, :, : i + 1]).sum(-2) / w.sum(-1, keepdim=True)
    return out


TAYLOR_CASES = [(2, 3, 1, 3, 4), (1, 2, 7, 1, 5), (1, 2, 65, 16, 8), (2, 1, 33, 3, 1)]  # B, H, T, f, Dv


@graded(1)
@pytest.mark.parametrize(
    "B, H, T, f, Dv", TAYLOR_CASES, ids=[f"T{c[2]}-f{c[3]}-Dv{c[4]}" for c in TAYLOR_CASES]
)
def test_taylor_linear_attention_equals_the_quadratic_form(ex02, B, H, T, f, Dv):
    q, k, v = randn(B, H, T, f), randn(B, H, T, f, seed=1), randn(B, H, T, Dv, seed=2)
    out = ex02.taylor_linear_attention(q, k, v)
    assert out.shape == (B, H, T, Dv)
    torch.testing.assert_close(out, taylor_by_hand(q, k, v))


@graded(1)
def test_taylor_linear_attention_ignores_future_tokens(ex02):
    q, k, v = randn(1, 2, 9, 3), randn(1, 2, 9, 3, seed=1), randn(1, 2, 9, 4, seed=2)
    out = ex02.taylor_linear_attention(q, k, v)
    for t in range(8):
        k2, v2 = k.clone(), v.clone()
        k2[:, :, t + 1 :], v2[:, :, t + 1 :] = randn(1, 2, 8 - t, 3, seed=3), randn(1, 2, 8 - t, 4, seed=4)
        prefix = ex02.taylor_linear_attention(q, k2, v2)[:, :, : t + 1]
        torch.testing.assert_close(prefix, out[:, :, : t + 1], msg=f"rows 0..{t} changed with keys after {t}")


@graded(1)
def test_taylor_linear_attention_float32(ex02):
    q, k, v = (randn(2, 2, 40, 16, seed=s, dtype=torch.float32) for s in (0, 1, 2))
    out = ex02.taylor_linear_attention(q, k, v)
    assert out.dtype == torch.float32
    expected = taylor_by_hand(q.double(), k.double(), v.double())
    torch.testing.assert_close(out, expected.float(), atol=1e-4, rtol=1e-4)


# Non-approximate attention: same-token scores


@graded(1)
@pytest.mark.parametrize("T, D", [(1, 1), (7, 16), (65, 3)])
def test_non_approx_scores_pair_each_query_with_its_own_key(ex02, T, D):
    q, k = randn(2, 3, T, D), randn(2, 3, T, D, seed=1)
    s = ex02.non_approx_scores(q, k)
    assert s.shape == (2, 3, T)
    expected = torch.empty(2, 3, T, dtype=torch.float64)
    for b in range(2):
        for h in range(3):
            for j in range(T):
                expected[b, h, j] = torch.dot(q[b, h, j], k[b, h, j]) / math.sqrt(D)
    torch.testing.assert_close(s, expected)


# Non-approximate attention: the causal softmax average


def softmax_over_time(s: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """torch.softmax over a (T, T) matrix whose row i holds s_0..s_i, and -inf after i."""
    length = s.shape[-1]
    rows = s[..., None, :].expand(*s.shape[:-1], length, length)
    future = ~torch.ones(length, length, dtype=torch.bool).tril()
    return torch.softmax(rows.masked_fill(future, -math.inf), dim=-1) @ v


@graded(1)
@pytest.mark.parametrize("T", [1, 7, 65])
def test_non_approx_attention_is_a_causal_softmax_average(ex02, T):
    s, v = 2 * randn(2, 3, T), randn(2, 3, T, 5, seed=1)
    out = ex02.non_approx_attention(s, v)
    assert out.shape == (2, 3, T, 5)
    torch.testing.assert_close(out, softmax_over_time(s, v))


@graded(1)
def test_non_approx_attention_ignores_future_tokens(ex02):
    s, v = randn(1, 2, 9), randn(1, 2, 9, 4, seed=1)
    out = ex02.non_approx_attention(s, v)
    for t in range(8):
        s2, v2 = s.clone(), v.clone()
        s2[:, :, t + 1 :], v2[:, :, t + 1 :] = 3 * randn(1, 2, 8 - t, seed=3), randn(1, 2, 8 - t, 4, seed=4)
        prefix = ex02.non_approx_attention(s2, v2)[:, :, : t + 1]
        torch.testing.assert_close(prefix, out[:, :, : t + 1], msg=f"rows 0..{t} changed with later scores")


@graded(1)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
def test_non_approx_attention_is_stable_for_scores_in_the_thousands(ex02, dtype):
    """Scores of +-1e3 and more, rising and falling along the sequence: finite, and equal to the softmax."""
    rising = torch.linspace(-3000, 3000, 50, dtype=dtype)
    s = torch.stack([rising, rising.flip(0), 1e3 * randn(50, seed=5, dtype=dtype)])[None]  # (1, 3, 50)
    s = (8 * s).round() / 8  # multiples of 1/8: adding 1000 below is exact, in float32 too
    v = randn(1, 3, 50, 4, seed=1, dtype=dtype)
    out = ex02.non_approx_attention(s, v)
    assert out.dtype == dtype
    assert torch.isfinite(out).all(), "inf or NaN: exp overflowed, or every weight of a row underflowed"
    tolerance = {"atol": 1e-5, "rtol": 1e-5} if dtype == torch.float32 else {}
    torch.testing.assert_close(out, softmax_over_time(s.double(), v.double()).to(dtype), **tolerance)
    shifted = ex02.non_approx_attention(s + 1000, v)  # softmax does not change when every score grows by c
    torch.testing.assert_close(shifted, out, **tolerance)


# The paper's configurations (Table 11)


TABLE_11_AT_24 = {  # the paper's 24 layers, "N" for the variant; 1-indexed layers keeping attention in [ ]
    "uniform": "N" * 24,
    "standard": "A" * 24,
    "hybrid": "NA" * 12,  # [2, 4, ..., 24]
    "top": "A" * 12 + "N" * 12,  # [1-12]
    "middle": "A" * 6 + "N" * 12 + "A" * 6,  # [1-6, 19-24]
    "bottom": "N" * 12 + "A" * 12,  # [13-24]
    "every 4th": "NNNA" * 6,  # [4, 8, ..., 24]
    "first": "A" + "N" * 23,  # [1]
    "last": "N" * 23 + "A",  # [24]
    "both ends": "A" + "N" * 22 + "A",  # [1, 24]
    "skip": "A" * 12,  # the hybrid without its variant layers
}

AT_8 = {  # 8 layers, variant "T", standard attention spelled "S"
    "uniform": "TTTTTTTT",
    "standard": "SSSSSSSS",
    "hybrid": "TSTSTSTS",
    "top": "SSSSTTTT",
    "middle": "SSTTTTSS",
    "bottom": "TTTTSSSS",
    "every 4th": "TTTSTTTS",
    "first": "STTTTTTT",
    "last": "TTTTTTTS",
    "both ends": "STTTTTTS",
    "skip": "SSSS",
}


@graded(3)
def test_build_configuration_table_11_at_24_layers(ex02):
    for name, expected in TABLE_11_AT_24.items():
        assert ex02.build_configuration(name, "N", 24) == expected, name


@graded(2)
def test_build_configuration_at_8_layers_with_other_letters(ex02):
    for name, expected in AT_8.items():
        assert ex02.build_configuration(name, "T", 8, standard="S") == expected, name


@graded(1)
def test_build_configuration_small_and_odd_sizes(ex02):
    assert ex02.build_configuration("middle", "N", 6) == "AANNNA"  # 3 of 6 keep attention, 2 at the front
    assert ex02.build_configuration("middle", "N", 2) == "AN"
    assert ex02.build_configuration("top", "F", 2) == "AF"
    assert ex02.build_configuration("hybrid", "F", 2) == "FA"
    assert ex02.build_configuration("skip", "F", 2) == "A"
    assert ex02.build_configuration("every 4th", "R", 4) == "RRRA"
    assert ex02.build_configuration("every 4th", "R", 12) == "RRRARRRARRRA"
    for name in ("uniform", "standard", "first", "last"):
        assert ex02.build_configuration(name, "N", 1) == ("N" if name == "uniform" else "A"), name
    assert ex02.build_configuration("both ends", "N", 2) == "AA"
    assert ex02.build_configuration("last", "N", 5) == "NNNNA"


@graded(1)
def test_build_configuration_explicit_block_indices(ex02):
    assert ex02.build_configuration([0, 2], "F", 4) == "AFAF"
    assert ex02.build_configuration([], "N", 3) == "NNN"
    assert ex02.build_configuration([5, 1, 5], "N", 6) == "NANNNA"  # any order, duplicates allowed
    assert ex02.build_configuration((0,), "T", 1, standard="S") == "S"
    assert ex02.build_configuration(list(range(1, 24, 2)), "N", 24) == "NA" * 12


@graded(1)
def test_build_configuration_agrees_with_the_library_at_every_size(ex02):
    for name in [*TABLE_11_AT_24]:
        for n_layers in range(4, 33, 4):
            expected = configuration_pattern(name, "N", n_layers)
            assert ex02.build_configuration(name, "N", n_layers) == expected, f"{name} at {n_layers} layers"


BAD_CONFIGURATIONS = [  # configuration, n_layers
    ("hybrid", 7), ("top", 5), ("middle", 9), ("bottom", 3), ("skip", 3), ("every 4th", 6), ("every 4th", 10),
    ("skip", 1), ("both ends", 1), ([0, 8], 8), ([-1], 4), ("uniform", 0), ("first", -2),
]


@graded(2)
def test_build_configuration_refuses_bad_requests(ex02):
    for configuration, n_layers in BAD_CONFIGURATIONS:
        with pytest.raises(ValueError):
            ex02.build_configuration(configuration, "N", n_layers)
            pytest.fail(f"build_configuration({configuration!r}, 'N', {n_layers}) should raise ValueError")
    with pytest.raises(ValueError) as error:
        ex02.build_configuration("every 3rd", "N", 12)
    for name in TABLE_11_AT_24:
        assert name in str(error.value), f"the error for an unknown name should list {name!r}"
