"""Trained checkpoints are cached by config and seed, reused, and retrained on request."""

import pytest
import torch

from minihybrid import ModelConfig
from minihybrid.train import TrainConfig
from minihybrid.trained import cache_key, checkpoint_path, trained_model

CONFIG = ModelConfig(vocab_size=16, d_model=16, n_heads=2, pattern="A", max_seq_len=32)
STREAMS = {"train": torch.arange(400) % 7, "validation": torch.arange(100) % 7}


def run(steps=4, seed=0, **kw):
    cfg = TrainConfig(steps=steps, batch_size=2, seq_len=8, eval_every=2, eval_batches=1, progress=False,
                      seed=seed)
    return trained_model(CONFIG, cfg, STREAMS, "periodic", **kw)


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIHYBRID_CACHE", str(tmp_path))
    monkeypatch.delenv("MINIHYBRID_RETRAIN", raising=False)
    monkeypatch.delenv("MINIHYBRID_DEVICE", raising=False)


def test_second_call_loads_the_cached_model_without_training():
    first, history = run()
    calls = []
    second, again = run(on_eval=calls.append)  # a cache hit trains no step, so evaluates nothing
    assert calls == [] and again.val_loss == history.val_loss
    for a, b in zip(first.state_dict().values(), second.state_dict().values()):
        assert torch.equal(a, b)


def test_key_depends_on_config_seed_and_data():
    cfg = TrainConfig(steps=4)
    other_data = {**STREAMS, "train": STREAMS["train"].flip(0)}
    keys = {cache_key(CONFIG, cfg, STREAMS), cache_key(CONFIG, TrainConfig(steps=4, seed=1), STREAMS),
            cache_key(CONFIG, cfg, other_data), cache_key(CONFIG.with_pattern("AA"), cfg, STREAMS)}
    assert len(keys) == 4
    assert cache_key(CONFIG, TrainConfig(steps=4, progress=False), STREAMS) == cache_key(CONFIG, cfg, STREAMS)


def test_retrain_trains_again(monkeypatch):
    run()
    calls = []
    run(retrain=True, on_eval=calls.append)
    assert len(calls) == 2
    monkeypatch.setenv("MINIHYBRID_RETRAIN", "1")
    calls.clear()
    run(on_eval=calls.append)
    assert len(calls) == 2


def test_bad_arguments():
    with pytest.raises(ValueError, match="'train' and 'validation'"):
        trained_model(CONFIG, TrainConfig(steps=1), {"train": STREAMS["train"]}, "periodic")
    with pytest.raises(ValueError, match="data must name the training data"):
        checkpoint_path(CONFIG, TrainConfig(), STREAMS, "../escape")


def test_the_device_comes_from_the_environment_and_the_model_back_on_the_cpu(monkeypatch):
    model, _ = run(device="cpu")
    assert next(model.parameters()).device.type == "cpu"
    monkeypatch.setenv("MINIHYBRID_DEVICE", "tpu")
    with pytest.raises(ValueError, match="MINIHYBRID_DEVICE must be one of cpu, cuda, got 'tpu'"):
        run()
    with pytest.raises(ValueError, match="device must be one of cpu, cuda, got 'gpu'"):
        run(device="gpu")
