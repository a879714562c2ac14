"""Non-approximate attention (minihybrid/layers/non_approx.py): same-token scores and their causal softmax
average, stable at large scores, carried across calls by a (log-normaliser, average) state."""

import math

import pytest
import torch

from minihybrid import HybridLM, LayerSpec, ModelConfig
from minihybrid.layers.non_approx import causal_softmax_average, same_token_scores


def randn(*shape, seed=0, scale=1.0):
    return scale * torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def masked_softmax_average(s, v):
    """Row i: softmax over j <= i of s_j (the same scores in every row), times v."""
    t = s.shape[-1]
    scores = s[..., None, :].expand(*s.shape[:-1], t, t)
    weights = torch.softmax(scores.masked_fill(~torch.ones(t, t, dtype=torch.bool).tril(), -math.inf), -1)
    return weights @ v


def test_scores_are_per_token_dot_products_over_sqrt_d():
    q, k = randn(2, 3, 5, 8), randn(2, 3, 5, 8, seed=1)
    torch.testing.assert_close(same_token_scores(q, k), torch.einsum("bhtd,bhtd->bht", q, k) / math.sqrt(8))


@pytest.mark.parametrize("length", [1, 7, 65])
@pytest.mark.parametrize("scale", [1.0, 1e3])  # logits in the thousands: no overflow, no 0 / 0
def test_causal_average_equals_the_masked_softmax(length, scale):
    s, v = randn(2, 3, length, scale=scale), randn(2, 3, length, 4, seed=1)
    o, lse, avg = causal_softmax_average(s, v)
    torch.testing.assert_close(o, masked_softmax_average(s, v))
    torch.testing.assert_close(lse, torch.logsumexp(s, -1))
    torch.testing.assert_close(avg, o[..., -1, :])


@pytest.mark.parametrize("split", [1, 20, 39])
def test_the_state_carries_the_sequence_across_calls(split):
    s, v = randn(1, 2, 40, scale=30.0), randn(1, 2, 40, 3, seed=1)
    full = causal_softmax_average(s, v)[0]
    first, lse, avg = causal_softmax_average(s[..., :split], v[..., :split, :])
    second = causal_softmax_average(s[..., split:], v[..., split:, :], lse, avg)[0]
    torch.testing.assert_close(torch.cat([first, second], dim=2), full)


def model(pattern="NN", **options):
    torch.manual_seed(0)
    return HybridLM(ModelConfig(vocab_size=50, d_model=32, n_heads=4, n_kv_heads=2, pattern=pattern,
                                max_seq_len=64, mixer_options={"N": options}))


def test_an_output_depends_on_no_later_token():
    m = model().eval()
    x = torch.randint(0, 50, (1, 20))
    y = x.clone()
    y[0, 12:] = (y[0, 12:] + 1) % 50
    torch.testing.assert_close(m(x)[:, :12], m(y)[:, :12])


def test_qk_norm_rms_normalises_q_and_k():
    m = model(qk_norm=True)
    mixer = m.blocks[0].mixer
    s = mixer.logits(torch.randn(2, 9, 32))
    assert len(mixer.qk_norm) == 2 and s.abs().max() <= math.sqrt(mixer.head_dim) + 1e-4  # |q . k| <= D
    with pytest.raises(TypeError, match="qk_norm must be True or False"):
        model(pattern=[LayerSpec("N", {"qk_norm": 1})])
