"""Mixer "B" (layers/switchable.py): attention's weights, dense below dense_len and block-sparse above it;
cached decoding in sparse mode equals the sparse forward; compressed keys built incrementally, rebuilt after
crossing dense_len, rolled back exactly; its options checked."""

import pytest
import torch

from minihybrid.config import LayerSpec, ModelConfig
from minihybrid.kernels.block_sparse.select import compress_keys
from minihybrid.layers.switchable import PRESETS, SwitchableAttention, set_mode
from minihybrid.model import HybridLM

SMALL = {"kernel_size": 8, "stride": 4, "block_size": 16, "init_blocks": 1, "window": 16, "topk": 1,
         "dense_len": 64}
TOL = {"atol": 3e-5, "rtol": 1e-4}


def model_of(letter: str, seed: int = 0, **options) -> HybridLM:
    torch.manual_seed(seed)
    config = ModelConfig(vocab_size=61, d_model=48, n_heads=6, n_kv_heads=2, max_seq_len=512,
                         pattern=[LayerSpec(letter, options if letter == "B" else {})] * 2)
    return HybridLM(config).eval()


def ids(length: int, batch: int = 2) -> torch.Tensor:
    return torch.randint(0, 61, (batch, length), generator=torch.Generator().manual_seed(1))


def test_same_parameters_as_attention():
    dense, switchable = model_of("A"), model_of("B", **SMALL)
    assert switchable.load_state_dict(dense.state_dict(), strict=True)  # zero extra parameters
    x = ids(50)
    with torch.no_grad():
        torch.testing.assert_close(switchable(x), dense(x), **TOL)  # 50 < dense_len: dense


@pytest.mark.parametrize("mode", ["auto", "sparse"])
def test_sparse_above_dense_len_differs_from_dense_on_the_same_weights(mode):
    model, x = model_of("B", **SMALL), ids(200)
    set_mode(model, mode)
    with torch.no_grad():
        sparse = model(x)
        set_mode(model, "dense")
        dense = model(x)
    assert not torch.allclose(sparse, dense, atol=1e-3)
    torch.testing.assert_close(sparse[:, :48], dense[:, :48], **TOL)  # 3 blocks: every earlier one is taken


def test_short_context_runs_dense_exactly_even_when_forced_sparse():
    model, x = model_of("B", **{**SMALL, "mode": "sparse"}), ids(60)
    mixer = model.blocks[0].mixer
    assert not mixer.is_sparse(60) and mixer.is_sparse(100)  # 4 blocks fit the budget, 7 do not
    with torch.no_grad():
        out = model(x)
        set_mode(model, "dense")
        torch.testing.assert_close(out, model(x), **TOL)


@pytest.mark.parametrize("prefill", [1, 70, 150])
def test_sparse_decoding_equals_the_sparse_forward(prefill):
    model, x = model_of("B", **{**SMALL, "mode": "sparse"}), ids(150)
    with torch.no_grad():
        full = model(x)
        cache = model.init_cache(2, 150)
        steps = [model(x[:, :prefill], cache=cache)]
        steps += [model(x[:, t:t + 1], cache=cache) for t in range(prefill, 150)]
    torch.testing.assert_close(torch.cat(steps, 1), full, **TOL)
    layer = cache.layers[0]
    torch.testing.assert_close(layer.compressed_keys(), compress_keys(layer.k[:, :, :150], 8, 4))


def test_crossing_dense_len_while_decoding_builds_the_compressed_keys_then():
    model, x = model_of("B", **SMALL), ids(100)
    with torch.no_grad():
        cache = model.init_cache(2, 100)
        model(x[:, :60], cache=cache)
        layer = cache.layers[1]
        assert layer.n_kc == 0  # dense so far: nothing compressed
        for t in range(60, 100):
            model(x[:, t:t + 1], cache=cache)
    assert layer.n_kc == (100 - 8) // 4 + 1
    torch.testing.assert_close(layer.compressed_keys(), compress_keys(layer.k[:, :, :100], 8, 4))


def test_rollback_forgets_compressed_keys_past_the_position():
    model, x = model_of("B", **{**SMALL, "mode": "sparse"}), ids(130)
    with torch.no_grad():
        full = model(x)
        cache = model.init_cache(2, 130)
        model(x, cache=cache)
        cache.rollback(97)
        assert cache.layers[0].n_kc == (97 - 8) // 4 + 1
        redo = torch.cat([model(x[:, t:t + 1], cache=cache) for t in range(97, 130)], 1)
    torch.testing.assert_close(redo, full[:, 97:], **TOL)


def test_training_through_the_sparse_path_has_gradients():
    model = model_of("B", **{**SMALL, "mode": "sparse"}).train()
    model(ids(130)).logsumexp(-1).mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_presets_build_and_cache_bytes_count_the_compressed_keys():
    for preset in PRESETS.values():
        mixer = model_of("B", **preset).blocks[0].mixer
        kv = 2 * 2 * 8 * 512 * 4  # K and V: 2 kv heads x D 8 x 512 tokens x 4 bytes
        assert mixer.cache_bytes(512) == kv + 2 * 8 * ((512 - 32) // 16 + 1) * 4


@pytest.mark.parametrize("options,match", [
    ({"mode": "fast"}, "mode must be one of 'auto', 'dense', 'sparse'"),
    ({"kernel_size": 6}, "kernel_size=6 must be a multiple of stride=4"),
    ({"window": 8}, "window=8 must be a whole number"),
    ({"dense_len": 0}, "dense_len must be an int >= 1"),
])
def test_bad_options_are_refused(options, match):
    with pytest.raises(ValueError, match=match):
        model_of("B", **{**SMALL, **options})


def test_set_mode_refuses_unknown_modes_and_counts_blocks():
    model = model_of("B", **SMALL)
    assert set_mode(model, "sparse") == 2
    assert all(isinstance(b.mixer, SwitchableAttention) and b.mixer.mode == "sparse" for b in model.blocks)
    with pytest.raises(ValueError, match="mode must be one of"):
        set_mode(model, "off")
