"""What a long context costs while decoding: cache bytes and tokens/s of models at a given context length.

Used by the hybrid reproduction, notebook 01 and benchmarks/bench_scan.py, so all three print the same
numbers. Speed does not depend on the weights, so models may be freshly initialised.

Decode speed at context n: prefill n random tokens (untimed), snapshot the recurrent states, then time
`n_new` single-token steps; every repeat rolls the cache back to n first, and the models are timed
interleaved (`minihybrid.timing.compare`), so each sees the same machine load.
"""

from __future__ import annotations

import torch

from minihybrid.checks import check_int
from minihybrid.generate import decode_one_token, prefill
from minihybrid.model import HybridLM, ModelCache
from minihybrid.timing import Timing, compare


def cache_megabytes(model: HybridLM, context: int) -> float:
    """MiB of decode cache the model holds for one sequence of `context` tokens (all blocks)."""
    return sum(model.cache_bytes(context)) / 2**20


def _prefilled(model: HybridLM, context: int, n_new: int, seed: int) -> ModelCache:
    """A cache holding `context` random tokens, with room for n_new more and snapshots to roll back to."""
    ids = torch.randint(model.config.vocab_size, (1, context), generator=torch.Generator().manual_seed(seed))
    cache = model.init_cache(1, context + n_new)
    prefill(model, ids, cache)
    for layer_cache in cache.layers:
        if hasattr(layer_cache, "snapshot"):
            layer_cache.snapshot()
    return cache


@torch.inference_mode()
def decode_timings(models: dict[str, HybridLM], context: int, n_new: int = 32, repeats: int = 3,
                   seed: int = 0) -> dict[str, Timing]:
    """Seconds to decode n_new tokens after a `context`-token prompt, per model (interleaved repeats).

    tokens/s = n_new / timing.median. Every model needs max_seq_len >= context + n_new.
    """
    check_int("context", context)
    check_int("n_new", n_new)
    for name, model in models.items():
        if context + n_new > model.config.max_seq_len:
            raise ValueError(f"model {name!r}: context + n_new = {context + n_new} exceeds its max_seq_len="
                             f"{model.config.max_seq_len}")
    caches = {name: _prefilled(model.eval(), context, n_new, seed) for name, model in models.items()}
    token = torch.zeros(1, dtype=torch.long)

    def decode(name: str):
        model, cache = models[name], caches[name]
        cache.rollback(context)
        for _ in range(n_new):
            decode_one_token(model, token, cache)

    return compare({name: (lambda name=name: decode(name)) for name in models}, repeats=repeats)
