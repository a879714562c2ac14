"""Probes (minihybrid/probes.py): each mixer's mixing weights really are what it mixes the values with, and
the logits probe reads the scores before the softmax."""

import pytest
import torch

from minihybrid import HybridLM, ModelConfig
from minihybrid.probes import max_logits, mixer_inputs, mixing_maps


def model(pattern):
    torch.manual_seed(0)
    config = ModelConfig(vocab_size=40, d_model=32, n_heads=4, n_kv_heads=2, pattern=pattern, max_seq_len=24)
    return HybridLM(config).double().eval()


def values(mixer, x, side):
    """The per-head values (B, H, T, Dv) the mixer's weights apply to."""
    if hasattr(mixer, "_heads"):  # attention and its borrowed-QK variants
        v = mixer._heads(mixer.qk_input(x, side, 0), x, 0)[2]
        return v.repeat_interleave(mixer.n_heads // mixer.n_kv_heads, dim=1)
    return mixer._project(x)[-1]


@pytest.mark.parametrize("pattern", ["AS", "AR", "PE", "NT"])
def test_the_output_is_the_weights_applied_to_the_values(pattern):
    m = model(pattern)
    idx = torch.randint(0, 40, (2, 24))
    for (x, side), block in zip(mixer_inputs(m, idx), m.blocks):
        mixer = block.mixer
        weights = mixer.mixing_weights(x, side)
        torch.testing.assert_close(weights.sum(-1), torch.ones_like(weights[..., 0]))
        assert (weights.triu(1) == 0).all()  # causal
        mixed = (weights @ values(mixer, x, side)).transpose(1, 2).flatten(2)
        kwargs = {"side": side} if block.side_inputs else {}
        torch.testing.assert_close(mixer.o_proj(mixed), mixer(x, **kwargs))


def test_maps_and_logits_per_block():
    m = model("AFN")
    idx = torch.randint(0, 40, (1, 10))
    maps = mixing_maps(m, idx)
    assert maps[0].shape == (4, 10, 10) and torch.equal(maps[1][0], torch.eye(10, dtype=maps[1].dtype))
    logits = max_logits(m, idx)
    assert logits[1] is None and logits[0] > 0 and logits[2] > 0
    x, _ = mixer_inputs(m, idx)[2]
    assert logits[2] == pytest.approx(m.blocks[2].mixer.logits(x).abs().max().item())
