"""Compression of SmolLM2-135M: quantization and pruning, measured for quality, memory and speed.

Every variant starts from the same float32 model (the GGUF file dequantized) and is measured the same way:
held-out Shakespeare perplexity, true weight memory (each storage counted once), greedy decode tokens/s
and prefill tokens/s (all variants timed interleaved in one run). GPTQ and Wanda calibrate on windows of the
Shakespeare train split, block by block. The file's own weights were stored as Q4_1 (4-bit codes in groups
of 32, each group with a float scale and a float minimum), so "float32" is a 4-bit model written out in
floats, and every scheme here re-quantizes it onto another grid.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from minihybrid import plots
from minihybrid.compress import QuantScheme, quantize_model, weight_bytes
from minihybrid.compress.calibrate import calibration_windows
from minihybrid.compress.gptq import gptq_model
from minihybrid.compress.prune import prune_model, sparsity_report
from minihybrid.compress.speed import decode_rates, forward_costs, linear_share, prefill_rates
from minihybrid.data import corpus_text, load_shakespeare
from minihybrid.reproduce import Section
from minihybrid.reproduce.compress_claims import claims, describe
from minihybrid.runtime import pick
from minihybrid.train import evaluate


@dataclass(frozen=True)
class Settings:
    """Every size of the module, fast or full, in one place."""

    eval_windows: int  # held-out windows scored per variant
    window: int  # tokens per window
    calib_windows: int  # GPTQ / Wanda calibration windows (train split)
    calib_len: int
    decode_prompt: int  # prompt tokens of the decode timings
    decode_new: int  # new tokens per timed greedy decode
    decode_repeats: int
    prefill_len: int  # prompt tokens of the prefill timing
    cost_repeats: int  # repeats of each k in forward_costs


def settings(seed: int = 0) -> Settings:
    return Settings(eval_windows=pick(2, 32), window=pick(128, 512), calib_windows=pick(2, 32),
                    calib_len=pick(128, 512), decode_prompt=32, decode_new=pick(8, 64),
                    decode_repeats=pick(1, 3), prefill_len=pick(64, 256), cost_repeats=pick(2, 7))


FAST_SCHEME = QuantScheme(4, 128)  # the scheme the speed comparisons single out

VARIANTS = {  # name -> (builder(model, calibration windows), what it is)
    "fp32": (lambda m, c: m, "float32 weights (the GGUF file dequantized)"),
    "bf16": (lambda m, c: m.to(torch.bfloat16), "bfloat16 weights and activations"),
    "int8 RTN": (lambda m, c: quantize_model(m, QuantScheme(8, None)), "int8, per output channel"),
    "int4 RTN g128": (lambda m, c: quantize_model(m, QuantScheme(4, 128)),
                      "int4, groups of 128 (64 for 576 inputs)"),
    "int4 RTN g64": (lambda m, c: quantize_model(m, QuantScheme(4, 64)), "int4, groups of 64"),
    "int4 RTN g32": (lambda m, c: quantize_model(m, QuantScheme(4, 32)), "int4, groups of 32"),
    "int4 GPTQ g128": (lambda m, c: gptq_model(m, c, QuantScheme(4, 128)),
                       "int4 g128 (g64 for 576 inputs) by GPTQ"),
    "50% magnitude": (lambda m, c: prune_model(m, "magnitude", 0.5), "half of each row's weights zeroed"),
    "50% Wanda": (lambda m, c: prune_model(m, "wanda", 0.5, c), "half of each row, by weight x input norm"),
    "2:4 Wanda": (lambda m, c: prune_model(m, "wanda", "2:4", c), "2 of every 4 inputs, by Wanda's score"),
}


def build_variants(model, calibration) -> tuple[dict, dict]:
    """name -> compressed copy of the model; name -> seconds it took to build."""
    models, seconds = {}, {}
    for name, (build, _) in tqdm(VARIANTS.items(), desc="compress"):
        t0 = time.perf_counter()
        models[name] = build(copy.deepcopy(model), calibration).eval()
        seconds[name] = time.perf_counter() - t0
    return models, seconds


def run(fig_dir: Path, seed: int = 0) -> Section:
    from minihybrid.pretrained import load_smollm2

    setup = settings(seed)
    model, tokenizer = load_smollm2(max_seq_len=max(setup.window, setup.prefill_len + setup.decode_new) + 8)
    model.eval()
    val_ids = torch.tensor(tokenizer.encode(corpus_text(load_shakespeare()["validation"])))
    calibration = calibration_windows(setup.calib_windows, setup.calib_len, seed)
    models, build_s = build_variants(model, calibration)
    del model
    prompt = val_ids[None, :setup.prefill_len]
    short = prompt[:, :setup.decode_prompt]
    decode = decode_rates(models, short, setup.decode_new, setup.decode_repeats)
    prefill = prefill_rates(models, prompt, setup.decode_repeats)
    fast = f"int4 RTN g{FAST_SCHEME.group_size}"
    costs = {name: forward_costs(models[name], short, repeats=setup.cost_repeats)
             for name in ("fp32", fast)}
    shares = {name: linear_share(models[name], short, setup.decode_new) for name in ("fp32", fast)}
    rows = []
    for name, m in tqdm(models.items(), desc="perplexity"):
        nll = evaluate(m, val_ids, 1, setup.window, max_batches=setup.eval_windows)
        rows.append({"variant": name, "what": VARIANTS[name][1], "nll": nll, "ppl": math.exp(nll),
                     "weight_mb": weight_bytes(m) / 1e6, "decode_tok_s": decode[name],
                     "prefill_tok_s": prefill[name], "build_s": build_s[name]})
    sparsity = {name: [r for r in sparsity_report(models[name]) if r["name"].startswith("blocks.")]
                for name in ("50% magnitude", "50% Wanda", "2:4 Wanda")}
    results = {"variants": rows, "costs": costs, "shares": shares, "sparsity": sparsity}
    return Section("Compression: quantization and pruning of SmolLM2-135M", describe(setup, results),
                   draw_figures(fig_dir, results), data=data_rows(results), claims=claims(results))


def data_rows(results: dict) -> list[dict]:
    costs = [{"part": "forward cost", "variant": name, "k": k, "cost": c}
             for name, by_k in results["costs"].items() for k, c in by_k.items()]
    shares = [{"part": "decode step", "variant": name, **s} for name, s in results["shares"].items()]
    return [{"part": "variant", **r} for r in results["variants"]] + costs + shares


def draw_figures(fig_dir: Path, results: dict):
    """The section's figures: [(png path, caption)]."""
    rows = results["variants"]
    fig, axes = plots.figure(11, 4, ncols=2)
    plots.draw_tradeoff(axes[0], {r["variant"]: (r["weight_mb"], r["ppl"]) for r in rows},
                        xlabel="weight memory (MB)", ylabel="held-out perplexity")
    axes[0].set_yscale("log")
    plots.draw_bars(axes[1], {r["variant"]: r["decode_tok_s"] for r in rows}, ylabel="decode tokens/s",
                    zoom=False)
    memory = (plots.save(fig, fig_dir / "compress_quality_speed.png"),
              "Left: perplexity against weight memory per variant. Right: greedy decode tokens/s (2 threads)")
    fig, ax = plots.figure(6, 3.5)
    plots.draw_lines(ax, results["costs"], xlabel="new tokens k in one forward",
                     ylabel="cost (one-token forwards)")
    costs = (plots.save(fig, fig_dir / "compress_forward_cost.png"),
             ("A forward over k new tokens, in units of a one-token forward: the verify cost V(k) of "
              "speculative decoding (module 04)"))
    return [memory, costs]
