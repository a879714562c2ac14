"""Self-speculative decoding of SmolLM2-135M with skipped layers (CLaSp) and with a quantized draft.

Greedy decoding on a fixed prompt set (Shakespeare continuations, instruction prompts, code prompts). Every
decoder is timed against plain greedy decoding prompt by prompt and checked for identical output:
    fixed M     a skip set of M blocks chosen once, offline, by CLaSp's DP on a calibration prompt
    random M    M blocks drawn at random
    CLaSp M     the DP on the last verified token, re-run every `interval` rounds (also swept)
    int8, int4  module 05's quantized copies of the model as the draft, alone; int8 also with CLaSp skipping
The int8 draft runs again on the engine with skinny float32 linears (minihybrid.fast_linear), whose verify
pass over k tokens costs little more than one token, against plain greedy on that same engine. Beside
them: the layers' redundancy (cosine of residual streams, single-skip agreement), the measured
draft cost c and verify cost V(k), and the speed-up the cost model predicts from them.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from minihybrid import plots
from minihybrid.compress import QuantScheme, quantize_model
from minihybrid.compress.calibrate import calibration_windows
from minihybrid.compress.gptq import gptq_model
from minihybrid.data import corpus_text, load_shakespeare
from minihybrid.data.corpora import load_python_code
from minihybrid.fast_linear import use_skinny_linears
from minihybrid.generate import generate
from minihybrid.layer_select import (
    CLaSp,
    FixedSkip,
    RandomSkip,
    dp_skip_set,
    layer_cosines,
    layer_runner,
    skip_agreement,
)
from minihybrid.reproduce import Section
from minihybrid.reproduce.layerskip_claims import claims, describe
from minihybrid.runtime import pick
from minihybrid.speculative_speed import compare_decoders, draft_costs, forward_costs


@dataclass(frozen=True)
class Settings:
    """Every size of the module, fast or full, in one place."""

    prompts_per_kind: int  # prompts of each kind (Shakespeare, instruction, code)
    n_new: int  # new tokens per prompt
    skip_counts: tuple[int, ...]  # M for the fixed / random / CLaSp sweeps (1 block to 60% of 30)
    interval_skip: int  # M of the interval sweep
    intervals: tuple[int, ...]  # CLaSp's re-selection intervals (rounds)
    interval: int  # the interval of the M sweep
    quant_skips: tuple[int, ...]  # M skipped on top of the int8 draft
    gptq_windows: int  # calibration of the int4 draft (0: no int4 draft)
    quant_thresholds: tuple[float, ...]  # draft exits tried on the int8 draft besides quant_threshold
    threshold: float = 0.7  # draft exit of skipping drafts: stop after a token below this top-1 probability
    quant_threshold: float = 0.5  # draft exit of quantized drafts (they agree more often: draft further)
    max_draft: int = 8
    cost_repeats: int = 5


def settings(seed: int = 0) -> Settings:
    return Settings(prompts_per_kind=pick(1, 2), n_new=pick(16, 64),
                    skip_counts=pick((6,), (1, 3, 6, 9, 12, 15, 18)), interval_skip=6,
                    intervals=pick((), (1, 4, 64)), interval=16, quant_skips=pick((2,), (2, 4)),
                    quant_thresholds=pick((), (0.3, 0.7)), gptq_windows=pick(0, 16), cost_repeats=pick(2, 5))


INSTRUCTIONS = ["Explain in a few sentences why the sky is blue.",
                "Give three tips for someone learning to cook."]
CODE_REQUESTS = ["Write a Python function that returns the n-th Fibonacci number.",
                 "Write a Python function that checks whether a string is a palindrome."]
PROMPT_TOKENS = 48  # tokens of text in a continuation prompt


def prompt_set(tokenizer, per_kind: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """(name -> (1, T) ids, calibration (1, T)): Shakespeare and Python-source continuations of
    PROMPT_TOKENS tokens, instruction and code chat prompts; the calibration prompt is another passage."""
    play = corpus_text(load_shakespeare()["validation"])
    source = corpus_text(load_python_code()["validation"])

    def passage(text: str, start: int) -> torch.Tensor:
        return torch.tensor([tokenizer.encode(text[start:start + 8 * PROMPT_TOKENS])[:PROMPT_TOKENS]])

    def chat(request: str) -> torch.Tensor:
        return torch.tensor([tokenizer.encode(tokenizer.chat_prompt(request))])

    prompts = {}
    for i in range(per_kind):
        prompts[f"shakespeare {i + 1}"] = passage(play, 20_000 * (i + 1))
        prompts[f"instruction {i + 1}"] = chat(INSTRUCTIONS[i])
        prompts[f"code {i + 1}"] = chat(CODE_REQUESTS[i]) if i % 2 == 0 else passage(source, 20_000 * i)
    return prompts, passage(play, 5_000)


@torch.inference_mode()
def offline_skip_sets(model, calibration: torch.Tensor, counts) -> dict[int, list[int]]:
    """M -> the DP's skip set on the calibration prompt's last token (chosen once, then fixed)."""
    cache = model.init_cache(1, calibration.shape[1])
    _, hidden = model(calibration, cache=cache, return_hidden=True, last_only=True)
    pos = calibration.shape[1] - 1
    cache.rollback(pos)
    states = torch.stack([h[0, -1] for h in hidden])
    return {m: dp_skip_set(states, layer_runner(model, cache, pos), m).skip_set for m in counts}


@torch.inference_mode()
def redundancy(model, prompt: torch.Tensor, n_new: int) -> dict:
    """Cosine map of the residual streams and single-block skip agreement over a greedy continuation."""
    ids = generate(model, prompt, n_new).tokens
    _, hidden = model(ids, return_hidden=True)
    singles = skip_agreement(model, ids, [[i] for i in range(len(model.blocks))], start=prompt.shape[1] - 1)
    return {"cosines": layer_cosines(hidden).tolist(), "single_skip": singles}


def build_drafts(model, setup: Settings, seed: int) -> dict:
    """name -> quantized copy of the model (module 05) used as a draft."""
    drafts = {"int8": quantize_model(copy.deepcopy(model), QuantScheme(8, None)).eval()}
    if setup.gptq_windows:
        windows = calibration_windows(setup.gptq_windows, 256, seed)
        drafts["int4 GPTQ"] = gptq_model(copy.deepcopy(model), windows, QuantScheme(4, 128)).eval()
    return drafts


def cost_drafts(model, setup: Settings, fixed: dict[int, list[int]], drafts: dict) -> dict:
    """name -> (draft model, skip set) of every draft whose cost c the section measures: the model with
    each fixed skip set, each quantized copy alone, and int8 with skipping."""
    out = {f"skip M={m}": (model, fixed[m]) for m in setup.skip_counts}
    out |= {name: (draft, ()) for name, draft in drafts.items()}
    return out | {f"int8 + skip M={m}": (drafts["int8"], fixed[m]) for m in setup.quant_skips}


def decoders(setup: Settings, fixed: dict[int, list[int]], drafts: dict, seed: int) -> dict[str, dict]:
    """name -> speculative_generate options, for every configuration the section compares."""
    common = {"threshold": setup.threshold, "max_draft": setup.max_draft}
    out: dict[str, dict] = {}
    for m in setup.skip_counts:
        out[f"fixed M={m}"] = {"skip": FixedSkip(fixed[m])}
        out[f"random M={m}"] = {"skip": RandomSkip(m, seed)}
        out[f"CLaSp M={m}"] = {"skip": CLaSp(m, setup.interval)}
    for k in setup.intervals:
        out[f"CLaSp M={setup.interval_skip} K={k}"] = {"skip": CLaSp(setup.interval_skip, k)}
    out = {name: {**common, **options} for name, options in out.items()}
    quant = {"threshold": setup.quant_threshold, "max_draft": setup.max_draft}
    for name, draft in drafts.items():
        out[name] = {**quant, "draft_model": draft}
    for t in setup.quant_thresholds:
        out[f"int8 th={t}"] = {**quant, "draft_model": drafts["int8"], "threshold": t}
    for m in setup.quant_skips:
        out[f"int8 + CLaSp M={m}"] = {**quant, "draft_model": drafts["int8"],
                                      "skip": CLaSp(m, setup.interval)}
    return out


def run(fig_dir: Path, seed: int = 0) -> Section:
    from minihybrid.pretrained import load_smollm2

    setup = settings(seed)
    model, tokenizer = load_smollm2(max_seq_len=512)
    model.eval()
    prompts, calibration = prompt_set(tokenizer, setup.prompts_per_kind)
    fixed = offline_skip_sets(model, calibration, sorted({*setup.skip_counts, *setup.quant_skips}))
    drafts = build_drafts(model, setup, seed)
    layers = redundancy(model, prompts["instruction 1"], setup.n_new)
    speed = compare_decoders(model, list(prompts.values()), setup.n_new, decoders(setup, fixed, drafts, seed))
    short = prompts["instruction 1"]
    with tqdm(total=2, desc="costs") as bar:
        c = draft_costs(model, short, cost_drafts(model, setup, fixed, drafts), repeats=setup.cost_repeats)
        bar.update()
        v = forward_costs(model, short, ks=range(1, setup.max_draft + 2), repeats=setup.cost_repeats)
        bar.update()
    engine = skinny_engine(model, drafts["int8"], prompts, setup)
    results = {"prompts": {name: int(p.shape[1]) for name, p in prompts.items()}, "fixed": fixed,
               "layers": layers, "speed": speed, "draft_cost": c, "verify_cost": v, "skinny": engine}
    return Section("Layer skipping: self-speculative decoding of SmolLM2-135M (CLaSp)",
                   describe(setup, results), draw_figures(fig_dir, setup, results), data=data_rows(results),
                   claims=claims(setup, results))


def skinny_engine(model, int8, prompts: dict, setup: Settings) -> dict:
    """The int8 draft against plain greedy, every float32 linear on the skinny kernel: decoders, V(k), c."""
    skinny = use_skinny_linears(copy.deepcopy(model)).eval()
    quant = {"draft_model": int8, "max_draft": setup.max_draft}
    thresholds = (setup.quant_threshold, *setup.quant_thresholds)
    speed = compare_decoders(skinny, list(prompts.values()), setup.n_new,
                             {f"int8 th={t}": {**quant, "threshold": t} for t in thresholds})
    short = prompts["instruction 1"]
    return {"speed": speed,
            "verify_cost": forward_costs(skinny, short, ks=range(1, setup.max_draft + 2),
                                         repeats=setup.cost_repeats),
            "draft_cost": draft_costs(skinny, short, {"int8": (int8, ())}, repeats=setup.cost_repeats)}


def data_rows(results: dict) -> list[dict]:
    rows = [{"part": "decoder", "decoder": name, **r} for name, r in results["speed"].items()]
    rows += [{"part": "draft cost", "draft": name, "c": c} for name, c in results["draft_cost"].items()]
    rows += [{"part": "verify cost", "k": k, "V": v} for k, v in results["verify_cost"].items()]
    rows += [{"part": "single skip", "block": i, "agreement": a}
             for i, a in enumerate(results["layers"]["single_skip"])]
    engine = results["skinny"]
    rows += [{"part": "skinny decoder", "decoder": name, **r} for name, r in engine["speed"].items()]
    rows += [{"part": "skinny verify cost", "k": k, "V": v} for k, v in engine["verify_cost"].items()]
    rows += [{"part": "skinny draft cost", "draft": name, "c": c} for name, c in engine["draft_cost"].items()]
    return rows


def sweep(speed: dict, kind: str, counts) -> dict[int, dict]:
    """M -> the row of decoder '<kind> M=<M>'."""
    return {m: speed[f"{kind} M={m}"] for m in counts}


def draw_figures(fig_dir: Path, setup: Settings, results: dict):
    """The section's figures: [(png path, caption)]."""
    layers, speed = results["layers"], results["speed"]
    fig, axes = plots.figure(11, 4, ncols=2)
    plots.draw_heatmap(axes[0], layers["cosines"], "cosine of residual streams", "after block", "after block")
    plots.draw_per_layer(axes[1], {"top-1 agreement": layers["single_skip"]}, "agreement skipping one block",
                         log=False, first=0)
    redundancy_fig = (plots.save(fig, fig_dir / "layerskip_redundancy.png"),
                      ("Left: cosine similarity between SmolLM2's residual streams after each block (0 = the "
                       "embedding), averaged over a prompt and its continuation. Right: top-1 agreement with "
                       "the full model when one block is skipped (blocks counted from 0, as in skip sets), "
                       "teacher-forced on the same tokens"))
    fig, axes = plots.figure(11, 4, ncols=2)
    kinds = ("fixed", "random", "CLaSp")
    for ax, key, label in ((axes[0], "acceptance", "acceptance rate"),
                           (axes[1], "speedup", "speed-up over plain")):
        series = {kind: {m: r[key] for m, r in sweep(speed, kind, setup.skip_counts).items()}
                  for kind in kinds}
        plots.draw_lines(ax, series, xlabel="blocks skipped M (of 30)", ylabel=label)
        for name in ("int8", "int4 GPTQ"):
            if name in speed:
                ax.axhline(speed[name][key], linestyle="--", color="gray")
                ax.annotate(f"{name} draft", (setup.skip_counts[0], speed[name][key]), fontsize=7)
    axes[1].axhline(1.0, color="black", linewidth=0.8)
    sweep_fig = (plots.save(fig, fig_dir / "layerskip_sweep.png"),
                 (f"Acceptance (left) and speed-up over plain greedy (right) against the number of skipped "
                  f"blocks; CLaSp re-selects every {setup.interval} rounds. Dashed: the quantized drafts"))
    fig, ax = plots.figure(6, 3.5)
    plots.draw_lines(ax, {"torch linears": results["verify_cost"],
                          "skinny linears": results["skinny"]["verify_cost"]},
                     xlabel="tokens k in one forward", ylabel="cost (single-token steps)")
    costs_fig = (plots.save(fig, fig_dir / "layerskip_costs.png"),
                 ("The verify cost V(k): a forward over k new tokens in single-token steps of the same "
                  "model, with torch's float32 linears and with the skinny kernel (minihybrid.fast_linear)"))
    return [redundancy_fig, sweep_fig, costs_fig]
