"""The intra-layer hybrid ("H"): half the heads attention, half SSM, fused by concatenation or subtraction."""

import pytest
import torch

from minihybrid import HybridLM, ModelConfig
from minihybrid.layers.attention import Attention
from minihybrid.layers.intra_hybrid import IntraHybrid, fuse_branches
from minihybrid.layers.ssm import Mamba2


def hybrid(fusion="concat", n_heads=4, n_kv_heads=None, d_model=32) -> IntraHybrid:
    torch.manual_seed(0)
    config = ModelConfig(
        d_model=d_model,
        n_heads=n_heads,
        n_kv_heads=n_kv_heads,
        pattern="H",
        mixer_options={"H": {"fusion": fusion}},
    )
    return HybridLM(config).blocks[0].mixer


def test_the_branches_are_the_attention_and_ssm_mixers_at_half_width():
    mixer = hybrid()
    assert isinstance(mixer.attn, Attention) and isinstance(mixer.ssm, Mamba2)
    assert mixer.attn.n_heads == 2 and mixer.ssm.n_heads == 2 and mixer.ssm.head_dim == 8
    assert mixer.width == 16 and mixer.out_proj.in_features == 32
    assert hybrid("diff").out_proj.in_features == 16


def test_fuse_branches_normalises_each_branch_then_concatenates_or_subtracts():
    g = torch.Generator().manual_seed(0)
    a, s = torch.randn(2, 5, 6, generator=g) * 3, torch.randn(2, 5, 6, generator=g) + 1
    wa, ws = torch.rand(6, generator=g), torch.rand(6, generator=g)

    def norm(t, w):
        return t / torch.sqrt(t.square().mean(-1, keepdim=True) + 1e-5) * w

    torch.testing.assert_close(
        fuse_branches(a, s, wa, ws, "concat"), torch.cat([norm(a, wa), norm(s, ws)], -1)
    )
    torch.testing.assert_close(fuse_branches(a, s, wa, ws, "diff"), norm(a, wa) - norm(s, ws))


def test_forward_is_the_fusion_of_the_two_branches():
    mixer = hybrid("diff").eval()
    x = torch.randn(2, 9, 32)
    with torch.no_grad():
        expected = mixer.out_proj(
            fuse_branches(mixer.attn(x), mixer.ssm(x), mixer.attn_norm, mixer.ssm_norm, "diff")
        )
        torch.testing.assert_close(mixer(x), expected)


def test_cache_bytes_are_half_the_attention_cache_plus_a_fixed_state():
    mixer, attention = hybrid(), HybridLM(ModelConfig(d_model=32, n_heads=4, pattern="A")).blocks[0].mixer
    growth = mixer.cache_bytes(200) - mixer.cache_bytes(100)
    assert 2 * growth == attention.cache_bytes(200) - attention.cache_bytes(100)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"n_heads": 3, "d_model": 24}, "n_heads=3 and n_kv_heads=3 must be even"),
        ({"n_heads": 8, "n_kv_heads": 8, "d_model": 40}, "head_dim=5 must be even"),
        ({"fusion": "add"}, "fusion must be one of concat, diff, got 'add'"),
    ],
)
def test_bad_splits_and_fusions_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        hybrid(**kwargs)
