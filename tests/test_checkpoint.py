"""Quantized checkpoints: save, load into a fresh model, and clear errors on a mismatch."""

import pytest
import torch
from safetensors.torch import save_file

from minihybrid import HybridLM, ModelConfig
from minihybrid.compress import (
    QuantEmbedding,
    QuantLinear,
    QuantScheme,
    load_quantized,
    quantize_model,
    save_quantized,
    weight_bytes,
)
from minihybrid.pretrained import load_smollm2
from tests.test_modules import tiny_model


def test_round_trip(tmp_path):
    model = quantize_model(tiny_model(), QuantScheme(4, 64, symmetric=False))
    save_quantized(model, tmp_path / "q.safetensors")
    loaded = load_quantized(tiny_model(), tmp_path / "q.safetensors", QuantScheme(4, 64, symmetric=False))
    x = torch.randint(0, 64, (1, 10))
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    assert isinstance(loaded.head, QuantLinear) and loaded.head.scheme == QuantScheme(4, 64, False)


def test_mismatches_are_named(tmp_path):
    path = tmp_path / "q.safetensors"
    save_quantized(quantize_model(tiny_model(), QuantScheme(8, 32)), path)
    with pytest.raises(ValueError, match="saved as int8 g32 sym, expected int4 g32 sym"):
        load_quantized(tiny_model(), path, QuantScheme(4, 32))
    wider = HybridLM(ModelConfig(vocab_size=64, d_model=96, n_heads=4, n_kv_heads=2, pattern="AA",
                                 max_seq_len=32))
    with pytest.raises(ValueError, match="do not fit a"):
        load_quantized(wider, path)
    deeper = HybridLM(ModelConfig(vocab_size=64, d_model=64, n_heads=4, n_kv_heads=2, pattern="A",
                                  max_seq_len=32))
    with pytest.raises(ValueError, match="which this model does not have"):
        load_quantized(deeper, path)


def test_a_refused_file_leaves_the_model_as_it_was(tmp_path):
    path = tmp_path / "q.safetensors"
    deeper = HybridLM(ModelConfig(vocab_size=64, d_model=64, n_heads=4, n_kv_heads=2, pattern="AAA",
                                  max_seq_len=32))
    save_quantized(quantize_model(deeper, QuantScheme(4, 32)), path)
    model = tiny_model()
    x = torch.randint(0, 64, (1, 10))
    with torch.no_grad():
        before = model(x)
        with pytest.raises(ValueError, match="blocks.2.mixer.q_proj, which this model does not have"):
            load_quantized(model, path)
        assert torch.equal(model(x), before)
    assert not any(isinstance(m, QuantLinear) for m in model.modules())


def test_smollm2_with_its_tied_head_round_trips(tmp_path):
    model, _ = load_smollm2(max_seq_len=64)
    quantize_model(model, QuantScheme(4, 64))
    assert isinstance(model.embed, QuantEmbedding) and model.embed.head is model.head
    save_quantized(model, tmp_path / "smol.safetensors")
    fresh = load_smollm2(max_seq_len=64)[0]
    loaded = load_quantized(fresh, tmp_path / "smol.safetensors", QuantScheme(4, 64))
    x = torch.randint(0, 49152, (1, 12))
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    assert weight_bytes(loaded) < 0.2 * 538e6


def test_corrupt_and_foreign_files(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="cannot read quantized checkpoint"):
        load_quantized(tiny_model(), bad)
    plain = tmp_path / "plain.safetensors"
    save_file({"x": torch.zeros(1)}, str(plain))
    with pytest.raises(ValueError, match="no 'quantized' metadata"):
        load_quantized(tiny_model(), plain)
    with pytest.raises(ValueError, match="quantize it first"):
        save_quantized(tiny_model(), tmp_path / "f.safetensors")
