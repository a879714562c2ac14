"""Graded tests for exercise set 00: RMSNorm, RoPE, causal GQA attention and one cached decoding step.

Each test compares your answer with an independent computation (a torch built-in, RoPE written with complex
numbers, a formula spelled out) or checks a property, on awkward shapes. Run them with

    pytest tests/graded/test_ex00.py          (MINIHYBRID_IMPL=solutions to run the reference answers)
"""

import math

import adapters
import pytest
import torch
import torch.nn.functional as F


def graded(points: int) -> pytest.MarkDecorator:
    return pytest.mark.graded(exercise="ex00", points=points)


@pytest.fixture
def ex00():
    """The ex00 functions under test (yours, or what MINIHYBRID_IMPL selects), through tests/adapters.py."""
    return adapters.load("ex00")


def randn(*shape: int, seed: int = 0, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def nan_cache(batch: int, heads: int, max_len: int, head_dim: int) -> torch.Tensor:
    """A cache whose unwritten slots are NaN, so reading one poisons the result."""
    return torch.full((batch, heads, max_len, head_dim), math.nan, dtype=torch.float64)


def sdpa_causal(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)


# RMSNorm


@graded(1)
@pytest.mark.parametrize(
    "shape, dtype", [((2, 7, 16), torch.float32), ((1, 33, 64), torch.float64)], ids=["f32", "f64"]
)
def test_rms_norm_matches_torch(ex00, shape, dtype):
    x, weight = randn(*shape, dtype=dtype), 1 + randn(shape[-1], seed=1, dtype=dtype)
    out = ex00.rms_norm(x, weight)
    assert out.shape == x.shape and out.dtype == dtype
    torch.testing.assert_close(out, F.rms_norm(x, shape[-1:], weight, eps=1e-6), atol=1e-5, rtol=1e-5)


@graded(1)
def test_rms_norm_eps_goes_inside_the_square_root(ex00):
    """With activations as small as sqrt(eps), where eps sits (and whether it is used) shows."""
    x, weight = 1e-3 * randn(3, 16), torch.ones(16, dtype=torch.float64)
    for eps in (1e-6, 1e-2):
        expected = x / torch.sqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps)
        torch.testing.assert_close(ex00.rms_norm(x, weight, eps=eps), expected, atol=1e-7, rtol=1e-4)


@graded(1)
def test_rms_norm_float16_is_computed_in_float32(ex00):
    """x**2 overflows float16 for |x| > 256: compute in float32, return float16."""
    x, weight = (300 * randn(4, 64, seed=2)).half(), (1 + 0.1 * randn(64, seed=3)).half()
    out = ex00.rms_norm(x, weight)
    assert out.dtype == torch.float16
    expected = F.rms_norm(x.float(), (64,), weight.float(), eps=1e-6).half()
    torch.testing.assert_close(out, expected, atol=2e-3, rtol=2e-3)


# RoPE


@graded(1)
@pytest.mark.parametrize(
    "positions, head_dim, base",
    [([5], 16, 10000.0), (list(range(7)), 64, 10000.0), (list(range(40, 73)), 16, 500000.0)],
    ids=["T1-D16", "T7-D64", "T33-D16-base5e5"],
)
def test_rope_cos_sin_tables(ex00, positions, head_dim, base):
    cos, sin = ex00.rope_cos_sin(torch.tensor(positions), head_dim, base)
    assert cos.shape == sin.shape == (len(positions), head_dim)
    inv_freq = [base ** (-2 * i / head_dim) for i in range(head_dim // 2)]
    angles = torch.tensor([[p * f for f in inv_freq] for p in positions], dtype=torch.float64)
    for table, expected in ((cos, angles.cos()), (sin, angles.sin())):
        torch.testing.assert_close(table, expected.repeat(1, 2), atol=1e-4, rtol=0, check_dtype=False)


def rope_complex(x: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """RoPE the other way round: dims (i, i + D/2) form a complex number, multiplied by exp(1j * angle)."""
    half = x.shape[-1] // 2
    z = torch.complex(x[..., :half], x[..., half:]) * torch.polar(torch.ones_like(angles), angles)
    return torch.cat([z.real, z.imag], dim=-1)


@graded(1)
@pytest.mark.parametrize("shape", [(1, 1, 1, 16), (2, 3, 33, 64)], ids=["T1-D16", "T33-D64"])
def test_apply_rope_matches_complex_rotation(ex00, shape):
    x, angles = randn(*shape), 3 * randn(shape[2], shape[3] // 2, seed=1)  # any real angles will do
    cos, sin = angles.cos().repeat(1, 2), angles.sin().repeat(1, 2)
    torch.testing.assert_close(ex00.apply_rope(x, cos, sin), rope_complex(x, angles))


@graded(1)
def test_rope_preserves_norms(ex00):
    x = randn(2, 3, 7, 64)
    cos, sin = ex00.rope_cos_sin(torch.arange(7) + 11, 64)
    out = ex00.apply_rope(x, cos, sin)
    torch.testing.assert_close(out.norm(dim=-1), x.norm(dim=-1), atol=1e-5, rtol=1e-5)


@graded(1)
def test_rope_scores_depend_only_on_relative_position(ex00):
    q, k = randn(1, 2, 1, 32, seed=4), randn(1, 2, 1, 32, seed=5)

    def score(query_pos: int, key_pos: int) -> torch.Tensor:
        cos, sin = ex00.rope_cos_sin(torch.tensor([query_pos, key_pos]), 32)
        return (ex00.apply_rope(q, cos[:1], sin[:1]) * ex00.apply_rope(k, cos[1:], sin[1:])).sum(-1)

    for shift in (1, 10, 57):
        torch.testing.assert_close(score(3 + shift, 1 + shift), score(3, 1), atol=1e-4, rtol=1e-4)
    assert not torch.allclose(score(3, 1), score(5, 1)), "scores should change with the relative position"


# Causal GQA attention


@graded(1)
@pytest.mark.parametrize("B, Hq, Hkv, T, D", [(2, 6, 2, 7, 16), (1, 4, 4, 33, 64), (3, 6, 2, 1, 64)])
def test_attention_matches_torch_sdpa(ex00, B, Hq, Hkv, T, D):
    q, k, v = randn(B, Hq, T, D), randn(B, Hkv, T, D, seed=1), randn(B, Hkv, T, D, seed=2)
    out = ex00.causal_gqa_attention(q, k, v)
    assert out.shape == (B, Hq, T, D)
    torch.testing.assert_close(out, sdpa_causal(q, k, v))


@graded(1)
def test_attention_ignores_future_tokens(ex00):
    q, k, v = randn(1, 4, 9, 16), randn(1, 2, 9, 16, seed=1), randn(1, 2, 9, 16, seed=2)
    out = ex00.causal_gqa_attention(q, k, v)
    for t in range(8):
        k2, v2 = k.clone(), v.clone()
        k2[:, :, t + 1 :], v2[:, :, t + 1 :] = randn(1, 2, 8 - t, 16, seed=3), randn(1, 2, 8 - t, 16, seed=4)
        prefix = ex00.causal_gqa_attention(q, k2, v2)[:, :, : t + 1]
        torch.testing.assert_close(prefix, out[:, :, : t + 1], msg=f"rows 0..{t} changed with keys after {t}")


@graded(1)
def test_attention_is_stable_for_large_scores(ex00):
    """Adding 500 to every score of a row leaves softmax unchanged, unless exp() overflows float32."""
    q, k, v = (randn(1, 6, 7, 16, seed=s, dtype=torch.float32) for s in (0, 1, 2))
    q[..., 0], k[..., 0] = 0.0, 0.0
    expected = sdpa_causal(q, k[:, :2], v[:, :2])
    q[..., 0], k[..., 0] = 2000.0, 1.0  # every score grows by 2000 * 1 / sqrt(16) = 500
    out = ex00.causal_gqa_attention(q, k[:, :2], v[:, :2])
    torch.testing.assert_close(out, expected, atol=1e-3, rtol=1e-3)


# One cached decoding step


@graded(1)
def test_decode_step_writes_the_cache_in_place(ex00):
    k_cache, v_cache = nan_cache(2, 2, 10, 16), nan_cache(2, 2, 10, 16)
    k_cache[:, :, :4], v_cache[:, :, :4] = randn(2, 2, 4, 16, seed=1), randn(2, 2, 4, 16, seed=2)
    k_new, v_new = randn(2, 2, 1, 16, seed=3), randn(2, 2, 1, 16, seed=4)
    expected_k, expected_v = k_cache.clone(), v_cache.clone()
    expected_k[:, :, 4:5], expected_v[:, :, 4:5] = k_new, v_new
    ex00.decode_step(randn(2, 6, 1, 16), k_new, v_new, k_cache, v_cache, 4)
    torch.testing.assert_close(k_cache, expected_k, atol=0, rtol=0, equal_nan=True)
    torch.testing.assert_close(v_cache, expected_v, atol=0, rtol=0, equal_nan=True)


@graded(1)
@pytest.mark.parametrize("B, Hq, Hkv, T, D", [(2, 6, 2, 7, 16), (1, 4, 4, 33, 64)])
def test_decode_step_matches_last_row_of_causal_attention(ex00, B, Hq, Hkv, T, D):
    q, k, v = randn(B, Hq, T, D), randn(B, Hkv, T, D, seed=1), randn(B, Hkv, T, D, seed=2)
    k_cache, v_cache = nan_cache(B, Hkv, T + 5, D), nan_cache(B, Hkv, T + 5, D)
    k_cache[:, :, : T - 1], v_cache[:, :, : T - 1] = k[:, :, :-1], v[:, :, :-1]
    out = ex00.decode_step(q[:, :, -1:], k[:, :, -1:], v[:, :, -1:], k_cache, v_cache, T - 1)
    assert out.shape == (B, Hq, 1, D)
    torch.testing.assert_close(out, sdpa_causal(q, k, v)[:, :, -1:])


@graded(1)
def test_decoding_token_by_token_reproduces_causal_attention(ex00):
    q, k, v = randn(1, 6, 9, 16), randn(1, 2, 9, 16, seed=1), randn(1, 2, 9, 16, seed=2)
    k_cache, v_cache = nan_cache(1, 2, 9, 16), nan_cache(1, 2, 9, 16)
    steps = [
        ex00.decode_step(q[:, :, t : t + 1], k[:, :, t : t + 1], v[:, :, t : t + 1], k_cache, v_cache, t)
        for t in range(9)
    ]
    torch.testing.assert_close(torch.cat(steps, dim=2), sdpa_causal(q, k, v))
    torch.testing.assert_close(k_cache, k)
    torch.testing.assert_close(v_cache, v)
