"""What speculative decoding costs and gains on a real model, measured the one way the reproduction, notebook
04 and ``benchmarks/bench_speculative.py`` all use.

    draft_costs       c: one draft step (a cheaper model and/or skipped blocks) in full single-token steps
    forward_costs     V(k): one full forward over k new tokens in single-token steps (module 05's)
    linear_costs      the same for the forward's linear-layer calls alone (module 05's)
    compare_decoders  plain greedy and speculative decoders on the same prompts, interleaved prompt by
                      prompt: tokens/s, speed-up, acceptance, where the time went, and the identity check

Seconds are decode seconds (prefill excluded: it is the same full-model forward for every decoder).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from tqdm.auto import tqdm

from minihybrid.compress.speed import forward_costs, linear_costs
from minihybrid.generate import decode_one_token, generate
from minihybrid.model import HybridLM
from minihybrid.speculative import speculative_generate
from minihybrid.timing import compare

__all__ = ["compare_decoders", "draft_costs", "forward_costs", "linear_costs"]


@torch.inference_mode()
def draft_costs(model: HybridLM, prompt: torch.Tensor, drafts: Mapping[str, tuple[HybridLM, Sequence[int]]],
                repeats: int = 5, steps: int = 4) -> dict[str, float]:
    """name -> c: seconds of `steps` cached draft steps (draft model, skip set) over the same steps of the
    full model, after prompt (1, T); all timed interleaved by `minihybrid.timing.compare`."""
    cache = model.init_cache(1, prompt.shape[1] + steps)
    token = model(prompt, cache=cache, last_only=True)[:, -1].argmax(-1)
    start = cache.pos

    def run(net: HybridLM, skip_set: Sequence[int]) -> None:
        current = token
        for _ in range(steps):
            current = decode_one_token(net, current, cache, skip_layers=skip_set).argmax(-1)
        cache.rollback(start)

    runs = {"full": lambda: run(model, ())} | {name: (lambda d=d: run(*d)) for name, d in drafts.items()}
    timings = compare(runs, repeats=repeats)
    return {name: timings[name].median / timings["full"].median for name in drafts}


def compare_decoders(model: HybridLM, prompts: Sequence[torch.Tensor], n_new: int,
                     decoders: Mapping[str, Mapping], progress: bool = True) -> dict[str, dict]:
    """Plain greedy and each speculative decoder (name -> keyword arguments of `speculative_generate`) on
    every prompt (1, T), run in turn prompt by prompt so a slow moment hits them alike.

    Returns name -> {tok_s, speedup (plain seconds / its seconds, summed over prompts), identical (prompts
    whose output equals plain greedy's), acceptance, mean_accepted, drafted_per_round, and the shares of
    draft, verify and selection in its decode time}; "plain" has tok_s only.
    """
    seconds = {"plain": 0.0} | {name: 0.0 for name in decoders}
    totals = {name: dict.fromkeys(("rounds", "drafted", "accepted", "identical", "draft_s", "verify_s",
                                   "select_s"), 0.0) for name in decoders}
    generate(model, prompts[0], 2)  # warm-up
    bar = tqdm(total=len(prompts) * (len(decoders) + 1), desc="decoders", disable=not progress)
    for prompt in prompts:
        plain = generate(model, prompt, n_new)
        seconds["plain"] += plain.decode_seconds
        bar.update()
        for name, options in decoders.items():
            result = speculative_generate(model, prompt, n_new, **options)
            seconds[name] += result.decode_seconds
            s, t = result.stats, totals[name]
            for key in ("rounds", "drafted", "accepted", "draft_s", "verify_s", "select_s"):
                t[key] += getattr(s, key)
            t["identical"] += torch.equal(result.tokens, plain.tokens)
            bar.update()
    bar.close()
    out = {"plain": {"tok_s": len(prompts) * n_new / seconds["plain"]}}
    for name, t in totals.items():
        total = seconds[name]
        out[name] = {
            "tok_s": len(prompts) * n_new / total,
            "speedup": seconds["plain"] / total,
            "identical": int(t["identical"]),
            "prompts": len(prompts),
            "acceptance": t["accepted"] / t["drafted"] if t["drafted"] else 0.0,
            "mean_accepted": t["accepted"] / t["rounds"],
            "drafted_per_round": t["drafted"] / t["rounds"],
            "draft_share": t["draft_s"] / total,
            "verify_share": t["verify_s"] / total,
            "select_share": t["select_s"] / total,
        }
    return out
