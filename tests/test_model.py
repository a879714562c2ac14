"""Config patterns, the mixer interface, HybridLM forward / cached decoding / layer skipping."""

import pytest
import torch
from torch import nn

from minihybrid import HybridLM, LayerSpec, ModelConfig
from minihybrid.layers import MIXERS, register
from minihybrid.layers.cache import RecurrentState
from minihybrid.patterns import placement_positions


def tiny(pattern="AA", window=None, **kw) -> ModelConfig:
    """A small GQA config; `window` sets every "S" block's window (model-wide mixer option)."""
    base = {"vocab_size": 61, "d_model": 32, "n_heads": 4, "n_kv_heads": 2, "max_seq_len": 160,
            "pattern": pattern, "mixer_options": {} if window is None else {"S": {"window": window}}}
    return ModelConfig(**{**base, **kw})


def stepwise_logits(model, x, prefill):
    """Logits from a prefill of `prefill` tokens then one token at a time."""
    cache = model.init_cache(x.shape[0], x.shape[1])
    outs = [model(x[:, :prefill], cache=cache)]
    outs += [model(x[:, t:t + 1], cache=cache) for t in range(prefill, x.shape[1])]
    return torch.cat(outs, 1)


# --- patterns -------------------------------------------------------------------------------------

def test_letter_pattern_and_specs():
    assert tiny("ASA").pattern_string == "ASA"
    cfg = tiny([LayerSpec("A"), LayerSpec("A", {"window": 8}), "S"])
    assert cfg.n_layers == 3 and cfg.layers[1].options == {"window": 8}
    assert HybridLM(cfg).blocks[1].mixer.window == 8


@pytest.mark.parametrize("ratio,n,expected", [
    ("1:1", 4, "SASA"), ("1:5", 12, "SSSASSSSSASS"), ("1:3", 8, "SSASSSAS"), ("1:0", 3, "AAA"),
])
def test_ratio_pattern_spreads_attention_evenly(ratio, n, expected):
    assert tiny(ratio, n_layers=n, other="S").pattern_string == expected


def test_ratio_positions_even():
    assert placement_positions("spread", 12, 2) == [3, 9]


@pytest.mark.parametrize("pattern,n_layers,match", [
    ("AXA", None, "unknown mixer letter 'X'.*allowed: A"),
    ("1:5", 8, "multiple of 6"),
    ("1:x", None, "must look like"),
    ("1-5", None, "unknown mixer letter .1."),
    ("0:0", None, "not both zero"),
    ("", None, "at least one layer"),
    ("AA", 3, "n_layers=3"),
])
def test_bad_patterns_raise(pattern, n_layers, match):
    with pytest.raises(ValueError, match=match):
        tiny(pattern, n_layers=n_layers, other="S")


def test_mixer_options_merge_model_wide_under_per_layer():
    cfg = tiny(["S", LayerSpec("S", {"window": 8}), "A"], window=16)
    assert [cfg.options_for(i) for i in range(3)] == [{"window": 16}, {"window": 8}, {}]
    model = HybridLM(cfg)
    assert [b.mixer.window for b in model.blocks] == [16, 8, None]
    assert HybridLM(tiny("S")).blocks[0].mixer.window == 64  # the constructor's default
    with pytest.raises(ValueError, match="mixer 'S' .SlidingWindowAttention. has no option 'windw'"):
        tiny([LayerSpec("S", {"windw": 8})])
    with pytest.raises(ValueError, match="mixer_options names unknown mixer 'Q'"):
        tiny(mixer_options={"Q": {}})


def test_presets_and_overrides():
    assert ModelConfig.from_name("tiny").pattern_string == "AAAA"
    assert ModelConfig.from_name("tiny", d_model=64).d_model == 64
    with pytest.raises(ValueError, match="unknown preset 'huge'; choose one of micro, tiny"):
        ModelConfig.from_name("huge")


def test_bad_heads_and_windows_raise():
    with pytest.raises(ValueError, match="multiple of n_kv_heads"):
        tiny(n_heads=4, n_kv_heads=3)
    with pytest.raises(ValueError, match="window must be an int >= 1"):
        HybridLM(tiny([LayerSpec("S", {"window": 0})]))


# --- forward, caches, skipping --------------------------------------------------------------------

@pytest.mark.parametrize("pattern,window", [("AA", 64), ("AS", 64), ("SS", 5)])
def test_cached_decoding_matches_full_forward(pattern, window):
    torch.manual_seed(0)
    model = HybridLM(tiny(pattern, window=window)).eval()
    x = torch.randint(0, 61, (2, 90))  # longer than S's default 64-token window
    with torch.no_grad():
        full = model(x)
        for prefill in (1, 37):
            torch.testing.assert_close(stepwise_logits(model, x, prefill), full, atol=2e-5, rtol=1e-4)


def test_window_changes_the_output_only_past_the_window():
    torch.manual_seed(0)
    full_cfg, win_cfg = tiny("A"), tiny("S", window=8)
    full, win = HybridLM(full_cfg).eval(), HybridLM(win_cfg).eval()
    win.load_state_dict(full.state_dict())
    x = torch.randint(0, 61, (1, 20))
    with torch.no_grad():
        a, b = full(x), win(x)
    torch.testing.assert_close(a[:, :8], b[:, :8])
    assert (a[:, 8:] - b[:, 8:]).abs().max() > 1e-4


def test_skip_layers_passes_the_residual_through():
    torch.manual_seed(0)
    model = HybridLM(tiny("AAA")).eval()
    x = torch.randint(0, 61, (1, 12))
    with torch.no_grad():
        logits, hidden = model(x, skip_layers={1}, return_hidden=True)
        torch.testing.assert_close(hidden[2], hidden[1])
        two_layer = HybridLM(tiny("AA")).eval()
        two_layer.embed, two_layer.head, two_layer.norm = model.embed, model.head, model.norm
        two_layer.blocks = nn.ModuleList([model.blocks[0], model.blocks[2]])
        torch.testing.assert_close(logits, two_layer(x))
    with pytest.raises(ValueError, match="block indices"):
        model(x, skip_layers=[3])


def test_skipped_layers_are_filled_by_a_later_full_pass():
    """Draft with a layer skipped, roll back, verify with all layers: same as a plain full pass."""
    torch.manual_seed(0)
    model = HybridLM(tiny("AAA")).eval()
    x = torch.randint(0, 61, (1, 30))
    with torch.no_grad():
        cache = model.init_cache(1, 30)
        model(x[:, :20], cache=cache)
        for t in range(20, 25):
            model(x[:, t:t + 1], cache=cache, skip_layers=[1])
        cache.rollback(20)
        verified = model(x[:, 20:25], cache=cache)
        torch.testing.assert_close(verified, model(x[:, :25])[:, 20:], atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize("backend", ["torch", "numba", "auto"])
@pytest.mark.parametrize("pattern", ["AA", "SS"])
def test_attention_backends_match_the_reference_in_the_model(backend, pattern):
    torch.manual_seed(0)
    reference = HybridLM(tiny(pattern, window=6, attn_backend="reference")).eval()  # the readable spec
    kernel = HybridLM(tiny(pattern, window=6, attn_backend=backend)).eval()  # "torch" is SDPA
    kernel.load_state_dict(reference.state_dict())
    x = torch.randint(0, 61, (2, 30))
    with torch.no_grad():
        torch.testing.assert_close(kernel(x), reference(x), atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(stepwise_logits(kernel, x, 11), reference(x), atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="attn_backend 'flash' is not one of 'auto', 'reference', 'torch'"):
        HybridLM(tiny(attn_backend="flash"))


def test_window_cache_rolls_back_within_its_slack_after_wrapping():
    torch.manual_seed(0)
    model = HybridLM(tiny("S", window=16)).eval()  # ring of 16 + 64 slots
    x = torch.randint(0, 61, (1, 150))
    with torch.no_grad():
        full = model(x)
        cache = model.init_cache(1, 150)
        model(x[:, :140], cache=cache)  # the ring has wrapped
        cache.rollback(140 - 65)  # the oldest position still needed is exactly the oldest kept
        torch.testing.assert_close(stepwise_logits_from(model, x, cache, 75), full[:, 75:],
                                   atol=2e-5, rtol=1e-4)


def stepwise_logits_from(model, x, cache, start):
    return torch.cat([model(x[:, t:t + 1], cache=cache) for t in range(start, x.shape[1])], 1)


def test_a_second_rollback_cannot_reach_overwritten_keys():
    model = HybridLM(tiny("S", window=32, max_seq_len=200)).eval()  # ring of 32 + 64 slots
    cache = model.init_cache(1, 200)
    with torch.no_grad():
        model(torch.randint(0, 61, (1, 200)), cache=cache)
    cache.rollback(190)
    with pytest.raises(ValueError, match="already overwrote position 99"):
        cache.rollback(130)  # positions 99..103 were overwritten before the first rollback


def test_training_works_after_generating():
    """Rotary tables first built inside generate()'s inference mode must not poison autograd."""
    from minihybrid.generate import generate

    # a head_dim no other test uses, so its rotary table is first built inside generate()
    model = HybridLM(tiny("A", head_dim=6, n_heads=2, n_kv_heads=1, d_model=12))
    generate(model, torch.tensor([[1, 2, 3]]), 10)
    model.train()
    model(torch.randint(0, 61, (1, 150))).sum().backward()
    assert model.embed.weight.grad is not None


def test_refused_rollback_leaves_every_layer_as_it_was():
    torch.manual_seed(0)
    model = HybridLM(tiny("AS", window=16)).eval()
    x = torch.randint(0, 61, (1, 150))
    with torch.no_grad():
        cache = model.init_cache(1, 150)
        model(x[:, :140], cache=cache)
        for bad in (140 - 66, -1, 141):
            with pytest.raises(ValueError, match="cannot roll back|must be in 0..140"):
                cache.rollback(bad)
        assert cache.pos == 140 and [c.length for c in cache.layers] == [140, 140]
        torch.testing.assert_close(model(x[:, 140:141], cache=cache), model(x[:, :141])[:, -1:],
                                   atol=2e-5, rtol=1e-4)


def test_embedding_init_std_survives_the_tied_head():
    torch.manual_seed(0)
    default = HybridLM(tiny("AA"))
    torch.manual_seed(0)
    wider = HybridLM(tiny("AA", embed_init_std=0.3))
    assert wider.head.weight is wider.embed.weight
    assert abs(wider.embed.weight.std().item() - 0.3) < 0.01
    assert abs(default.embed.weight.std().item() - 0.02) < 0.002  # init_std when not set
    assert wider.config.embedding_std == 0.3 and default.config.embedding_std == 0.02


def test_cache_bytes_per_layer():
    model = HybridLM(tiny("AS", head_dim=8, max_seq_len=1000))  # S: the default 64-token window
    per_token = 2 * 2 * 8 * 4  # K and V, 2 kv heads, head dim 8, float32
    assert model.cache_bytes(1000) == [1000 * per_token, (64 + 64) * per_token]
    cache = model.init_cache(1, 1000)
    assert cache.nbytes == sum(model.cache_bytes(1000))


def test_bad_inputs_raise():
    model = HybridLM(tiny())
    with pytest.raises(ValueError, match="batch, seq_len"):
        model(torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match="max_seq_len"):
        model(torch.zeros(1, 161, dtype=torch.long))
    cache = model.init_cache(1, 10)
    with pytest.raises(ValueError, match="overflows"):
        model(torch.zeros(1, 11, dtype=torch.long), cache=cache)


# --- the interface fits a fixed-size recurrent state ----------------------------------------------

class RunningMean(nn.Module):
    """A toy recurrent mixer: y_t = W (mean of x_1..x_t), state = (running sum, count)."""

    def __init__(self, config, layer_idx):
        super().__init__()
        self.proj = nn.Linear(config.d_model, config.d_model, bias=False)

    def forward(self, x, cache=None, start_pos=0):
        counts = torch.arange(start_pos + 1, start_pos + x.shape[1] + 1, dtype=x.dtype)[:, None]
        prefix = x.cumsum(1)
        if cache is not None:
            prefix = prefix + cache.tensors["sum"][:, None]
            cache.tensors["sum"].copy_(prefix[:, -1])
            cache.length = start_pos + x.shape[1]
        return self.proj(prefix / counts)

    def init_cache(self, batch, max_len, dtype=torch.float32, device=None):
        return RecurrentState(sum=torch.zeros(batch, self.proj.in_features, dtype=dtype, device=device))

    def cache_bytes(self, seq_len, dtype_bytes=4):
        return self.proj.in_features * dtype_bytes


@pytest.fixture
def running_mean_letter():
    register("Z")(RunningMean)
    yield "Z"
    del MIXERS["Z"]


def test_recurrent_mixer_fits_the_interface(running_mean_letter):
    torch.manual_seed(0)
    model = HybridLM(tiny("AZA")).eval()
    x = torch.randint(0, 61, (2, 24))
    with torch.no_grad():
        torch.testing.assert_close(stepwise_logits(model, x, 5), model(x), atol=2e-5, rtol=1e-4)
        cache = model.init_cache(2, 24)
        model(x[:, :10], cache=cache)
        cache.layers[1].snapshot()
        model(x[:, 10:14], cache=cache)
        cache.rollback(10)
        torch.testing.assert_close(model(x[:, 10:14], cache=cache), model(x[:, :14])[:, 10:], atol=2e-5,
                                   rtol=1e-4)
        with pytest.raises(ValueError, match="no snapshot"):
            cache.rollback(3)
    assert model.cache_bytes(10_000)[1] == 32 * 4
