"""Decode cost against context (minihybrid/context_cost.py): cache sizes and timed decoding that leaves
each cache where it found it."""

import torch

from minihybrid import HybridLM, ModelConfig
from minihybrid.context_cost import cache_megabytes, decode_timings


def model(pattern):
    torch.manual_seed(0)
    return HybridLM(ModelConfig(d_model=32, n_heads=2, pattern=pattern, max_seq_len=96))


def test_cache_megabytes_is_the_models_cache_bytes():
    m = model("AM")
    assert cache_megabytes(m, 64) == sum(m.cache_bytes(64)) / 2**20
    assert cache_megabytes(model("MM"), 64) == cache_megabytes(model("MM"), 8)  # a fixed state


def test_decode_timings_times_every_model_the_same_number_of_times():
    models = {"attention": model("AA"), "hybrid": model("AM")}
    timings = decode_timings(models, context=48, n_new=4, repeats=2)
    assert set(timings) == set(models)
    assert all(len(t.seconds) == 2 and min(t.seconds) > 0 for t in timings.values())
