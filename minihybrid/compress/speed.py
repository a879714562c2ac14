"""Model-level speed of compressed models: decode and prefill tokens/s, the cost of a forward over k new
tokens against one (and of its linear layers alone), and the share of a decode step spent outside the linear
layers.

The reproduction, the notebook and ``benchmarks/bench_quant_matmul.py`` all measure through these functions,
so they print the same numbers. Everything is timed by ``minihybrid.timing.compare`` (interleaved repeats).
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import torch
from torch import nn

from minihybrid.compress.modules import QuantLinear
from minihybrid.generate import generate
from minihybrid.layers.projections import project
from minihybrid.model import HybridLM
from minihybrid.timing import compare


def decode_rates(models: Mapping[str, HybridLM], prompt: torch.Tensor, n_new: int, repeats: int = 3) -> dict:
    """Greedy tokens/s per model, prefill of prompt (1, T) included: name -> n_new / median seconds."""
    runs = {name: (lambda m=m: generate(m, prompt, n_new)) for name, m in models.items()}
    return {name: n_new / t.median for name, t in compare(runs, repeats=repeats).items()}


def prefill_rates(models: Mapping[str, HybridLM], prompt: torch.Tensor, repeats: int = 3) -> dict:
    """Prompt tokens/s per model for one forward over prompt (1, T) into a fresh cache."""

    def run(model):
        with torch.inference_mode():
            model(prompt, cache=model.init_cache(1, prompt.shape[1]), last_only=True)

    runs = {name: (lambda m=m: run(m)) for name, m in models.items()}
    return {name: prompt.shape[1] / t.median for name, t in compare(runs, repeats=repeats).items()}


@torch.inference_mode()
def forward_costs(model: HybridLM, prompt: torch.Tensor, ks=range(1, 9), repeats: int = 5) -> dict:
    """k -> time of one cached forward over k new tokens / time of a forward over 1 (after prompt (1, T)).

    This is V(k) of speculative decoding: what verifying k drafted tokens costs in single-token steps."""
    cache = model.init_cache(1, prompt.shape[1] + max(ks))
    model(prompt, cache=cache, last_only=True)
    start = cache.pos
    new = prompt[:, -max(ks):].flip(1)

    def step(k):
        model(new[:, :k], cache=cache)
        cache.rollback(start)

    timings = compare({k: (lambda k=k: step(k)) for k in ks}, repeats=repeats)
    return {k: timings[k].median / timings[1].median for k in ks}


def linear_calls(model: nn.Module) -> list:
    """One decode step's linear-layer calls as (function of x, in_features): one per group of linears a
    layer runs together (``FUSABLE``, through ``layers.projections.project``), one per other linear."""
    calls, grouped = [], set()
    for module in model.modules():
        for names in getattr(module, "FUSABLE", ()):
            linears = tuple(getattr(module, name) for name in names)
            grouped.update(map(id, linears))
            calls.append((lambda x, g=linears: project(x, g), linears[0].in_features))
    return calls + [(m, m.in_features) for m in model.modules()
                    if isinstance(m, (nn.Linear, QuantLinear)) and id(m) not in grouped]


def call_inputs(model: nn.Module, calls: list, rows: int) -> list[torch.Tensor]:
    """A random input (1, rows, in_features) per call of ``linear_calls``, in the model's dtype."""
    dtype = next(model.parameters()).dtype
    return [torch.randn(1, rows, width, dtype=dtype) for _, width in calls]


def replay(calls: list, inputs: list[torch.Tensor]) -> None:
    """Make the calls of ``linear_calls`` on these inputs (``call_inputs``)."""
    for (f, _), x in zip(calls, inputs):
        f(x)


@torch.inference_mode()
def linear_costs(model: nn.Module, ks=range(1, 9), repeats: int = 5) -> dict:
    """k -> time of one decode step's linear-layer calls (``linear_calls``) on k rows / on one row: the part
    of V(k) (``forward_costs``) that the matmul kernels decide."""
    calls = linear_calls(model)
    inputs = {k: call_inputs(model, calls, k) for k in ks}
    timings = compare({k: (lambda k=k: replay(calls, inputs[k])) for k in ks}, repeats=repeats)
    return {k: timings[k].median / timings[1].median for k in ks}


@torch.inference_mode()
def linear_share(model: HybridLM, prompt: torch.Tensor, n_new: int) -> dict:
    """Where a decode step's time goes: seconds per token in the linear layers (the GEMVs) and in everything
    else (attention, norms, RoPE, Python). The step is timed over n_new greedy steps after prompt (1, T); the
    linears by replaying the same calls (``linear_calls``) on one row each, n_new times."""
    cache = model.init_cache(1, prompt.shape[1] + n_new + 1)
    token = model(prompt, cache=cache, last_only=True)[:, -1].argmax(-1)
    token = model(token[:, None], cache=cache, last_only=True)[:, -1].argmax(-1)  # warm-up step
    t0 = time.perf_counter()
    for _ in range(n_new):
        token = model(token[:, None], cache=cache, last_only=True)[:, -1].argmax(-1)
    total = time.perf_counter() - t0
    calls = linear_calls(model)
    inputs = call_inputs(model, calls, 1)
    replay(calls, inputs)  # warm-up
    t0 = time.perf_counter()
    for _ in range(n_new):
        replay(calls, inputs)
    linear = time.perf_counter() - t0
    return {"step_s": total / n_new, "linear_s": linear / n_new, "other_share": 1 - linear / total}
