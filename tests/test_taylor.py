"""The Taylor (Based) form of attention (minihybrid/layers/taylor.py): feature map, quadratic and linear
forms agreeing on awkward lengths and chunk sizes, with and without a carried state."""

import math

import pytest
import torch

from minihybrid import HybridLM, ModelConfig
from minihybrid.layers.taylor import taylor_features, taylor_linear, taylor_quadratic


def randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("f", [1, 3, 16])
def test_features_give_the_second_order_taylor_expansion_of_exp(f):
    q, k = randn(5, f), randn(5, f, seed=1)
    s = (q * k).sum(-1) / math.sqrt(f)
    dot = (taylor_features(q) * taylor_features(k)).sum(-1)
    assert taylor_features(q).shape == (5, 1 + f + f * f)
    torch.testing.assert_close(dot, 1 + s + s * s / 2)


def by_loop(q, k, v):
    """o_i = sum_j<=i (1 + s_ij + s_ij^2 / 2) v_j / sum_j<=i (...), written out per query."""
    out = torch.empty(*q.shape[:-1], v.shape[-1], dtype=v.dtype)
    for i in range(q.shape[-2]):
        s = (q[..., i:i + 1, :] * k[..., :i + 1, :]).sum(-1) / math.sqrt(q.shape[-1])
        w = 1 + s + s * s / 2
        out[..., i, :] = (w[..., None] * v[..., :i + 1, :]).sum(-2) / w.sum(-1, keepdim=True)
    return out


@pytest.mark.parametrize("length", [1, 7, 63, 65, 130])
@pytest.mark.parametrize("chunk_size", [1, 16, 64, 100])
def test_linear_form_equals_the_quadratic_form(length, chunk_size):
    q, k, v = randn(2, 3, length, 4), randn(2, 3, length, 4, seed=1), randn(2, 3, length, 5, seed=2)
    quadratic = taylor_quadratic(q, k, v)
    torch.testing.assert_close(quadratic, by_loop(q, k, v))
    torch.testing.assert_close(taylor_linear(q, k, v, chunk_size=chunk_size)[0], quadratic)


@pytest.mark.parametrize("split", [1, 33, 64])
def test_the_state_carries_the_sequence_across_calls(split):
    q, k, v = randn(1, 2, 97, 3), randn(1, 2, 97, 3, seed=1), randn(1, 2, 97, 6, seed=2)
    full, (s_full, z_full) = taylor_linear(q, k, v, chunk_size=16)
    first, state = taylor_linear(q[:, :, :split], k[:, :, :split], v[:, :, :split], chunk_size=16)
    second, (s, z) = taylor_linear(q[:, :, split:], k[:, :, split:], v[:, :, split:], state, chunk_size=16)
    torch.testing.assert_close(torch.cat([first, second], dim=2), full)
    torch.testing.assert_close(s, s_full)
    torch.testing.assert_close(z, z_full)


def test_the_mixer_gives_the_same_output_in_either_form():
    torch.manual_seed(0)
    config = ModelConfig(vocab_size=50, d_model=32, n_heads=2, pattern="TT", max_seq_len=300)
    model = HybridLM(config).double().eval()
    x = torch.randint(0, 50, (2, 150))
    quadratic = model(x)
    for block in model.blocks:
        block.mixer.quadratic_max_len = 0  # the linear, chunked form from here on
    torch.testing.assert_close(model(x), quadratic)
    assert model.cache_bytes(10) == model.cache_bytes(290)  # a fixed state: (1 + f + f^2) x (Dv + 1) per head
