"""The Mamba-2 mixer ("M"): its three scan forms agree, decoding equals the full forward, the state is
fixed-size, rollback goes through snapshots, and bad options or caches are refused clearly."""

import math

import pytest
import torch

from minihybrid import HybridLM, ModelConfig
from minihybrid.layers.ssm import Mamba2

CONFIG = {"vocab_size": 61, "d_model": 32, "n_heads": 4, "max_seq_len": 300}


def ssm_model(pattern="MM", seed=0, **options) -> HybridLM:
    torch.manual_seed(seed)
    return HybridLM(ModelConfig(**CONFIG, pattern=pattern, mixer_options={"M": options})).eval()


def ids(batch, length, seed=1):
    return torch.randint(0, 61, (batch, length), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("length", [1, 63, 65, 130])
def test_the_three_scan_forms_agree_inside_the_mixer(length):
    """The token-by-token spec, the chunked form (chunk 16 does not divide 63, 65 or 130) and the compiled
    scan give the same logits; decoding with the recurrent step gives them too."""
    x = ids(2, length)
    with torch.no_grad():
        logits = {
            b: ssm_model(scan_backend=b, chunk_size=16).double()(x) for b in ("reference", "torch", "numba")
        }
        model = ssm_model(chunk_size=16).double()
        cache = model.init_cache(2, length)
        stepwise = torch.cat([model(x[:, t : t + 1], cache=cache) for t in range(length)], dim=1)
    for got in (logits["torch"], logits["numba"], stepwise):
        torch.testing.assert_close(got, logits["reference"], atol=1e-10, rtol=1e-9)


def test_the_state_is_fixed_size_while_a_kv_cache_grows():
    small, large = ssm_model("MA").cache_bytes(16), ssm_model("MA").cache_bytes(256)
    assert small[0] == large[0] > 0  # the SSM's conv inputs and state
    assert large[1] == 16 * small[1]  # the attention block's keys and values


def test_rollback_to_a_snapshot_is_exact():
    model = ssm_model()
    x = ids(1, 40)
    with torch.no_grad():
        full = model(x)
        cache = model.init_cache(1, 40)
        model(x[:, :20], cache=cache)
        for layer in cache.layers:
            layer.snapshot()
        for t in range(20, 26):  # draft six tokens, then reject them
            model(x[:, t : t + 1], cache=cache)
        cache.rollback(20)
        rest = torch.cat([model(x[:, t : t + 1], cache=cache) for t in range(20, 40)], dim=1)
    torch.testing.assert_close(rest, full[:, 20:], atol=3e-5, rtol=1e-4)


def test_rollback_past_a_snapshot_is_refused_and_changes_nothing():
    model = ssm_model()
    x = ids(1, 30)
    with torch.no_grad():
        cache = model.init_cache(1, 30)
        model(x[:, :20], cache=cache)
        state = cache.layers[0].tensors["ssm"].clone()
        with pytest.raises(ValueError, match="no snapshot at position 10"):
            cache.rollback(10)
    assert cache.pos == 20 and torch.equal(cache.layers[0].tensors["ssm"], state)


def test_skipping_a_recurrent_layer_for_some_tokens_is_refused():
    model = ssm_model()
    x = ids(1, 6)
    with torch.no_grad():
        cache = model.init_cache(1, 6)
        model(x[:, :3], cache=cache, skip_layers={1})
        with pytest.raises(ValueError, match=r"layer 1 \(SSM\): the state holds 0 tokens"):
            model(x[:, 3:4], cache=cache)


def test_reference_initialisation():
    """A = -exp(A_log) with A_log ~ log U(1, 16); softplus(dt_bias) in [1e-3, 0.1]; D = 1."""
    mixer = Mamba2(ModelConfig(**CONFIG, pattern="M"), 0, expand=4, head_dim=4)  # 32 heads
    a = -torch.exp(mixer.A_log)
    assert ((a <= -1) & (a >= -16)).all()
    dt = torch.nn.functional.softplus(mixer.dt_bias)
    assert ((dt >= 1e-3 * (1 - 1e-5)) & (dt <= 0.1 * (1 + 1e-5))).all()
    assert torch.equal(mixer.D, torch.ones(32))
    assert mixer.n_heads == 32 and math.isclose(mixer.in_proj.weight.shape[0], 2 * 128 + 2 * 64 + 32)


@pytest.mark.parametrize(
    "options,match",
    [
        ({"d_state": 0}, "d_state must be an int >= 1"),
        ({"chunk_size": 0}, "chunk_size must be an int >= 1"),
        ({"head_dim": 5}, "d_inner=64 must be a multiple of head_dim=5"),
        ({"n_groups": 3}, "must split evenly into n_groups=3"),
        ({"scan_backend": "fast"}, "scan_backend 'fast' is not one of"),
        ({"dt_min": 0.5}, "dt_min=0.5 must be <= dt_max=0.1"),
    ],
)
def test_bad_options_are_refused(options, match):
    with pytest.raises(ValueError, match=match):
        ssm_model(**options)


def test_a_state_from_another_batch_size_is_refused():
    model = ssm_model()
    mixer = model.blocks[0].mixer
    state = mixer.init_cache(3, 10)
    with (
        torch.no_grad(),
        pytest.raises(ValueError, match="state was built for batch 3, the input has batch 2"),
    ):
        mixer(torch.randn(2, 4, 32), cache=state)
