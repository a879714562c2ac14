"""Benchmark: self-speculative greedy decoding of SmolLM2-135M against plain greedy decoding and its peers.

1. Validates: every decoder's output equals minihybrid's plain greedy decoding on every prompt.
2. Times, interleaved on the same prompts (Shakespeare continuation, instruction, code; prefill included for
   all): plain greedy; speculative decoding with module 05's int8 copy as the draft, alone and with CLaSp
   skipping; CLaSp skipping alone; transformers' greedy ``generate`` and its prompt-lookup decoding on the
   same GGUF file; the same pair (plain, int8 draft) with every float32 linear on the skinny kernel
   (``minihybrid.fast_linear``), where a verify pass over k tokens costs little more than one token.
3. The cost model: the measured acceptance a, drafted tokens per round n, draft cost c and verify cost V(k)
   give the speed-up E / (n c + V(n + 1)) each decoder should reach.

    python benchmarks/bench_speculative.py                # about 6 minutes on 2 cores
    python benchmarks/bench_speculative.py --repeats 5 --new-tokens 64
"""

from __future__ import annotations

import argparse
import copy

import torch

from minihybrid.compress import QuantScheme, quantize_model
from minihybrid.data.fetch import smollm2_gguf_path
from minihybrid.decode_speed import load_transformers
from minihybrid.fast_linear import use_skinny_linears
from minihybrid.generate import generate
from minihybrid.layer_select import CLaSp
from minihybrid.reproduce.layerskip import offline_skip_sets, prompt_set
from minihybrid.speculative import expected_speedup, speculative_generate
from minihybrid.speculative_speed import draft_costs, forward_costs, linear_costs
from minihybrid.timing import Spread, compare, target_line

TARGET_SPEEDUP, TARGET_VERIFY = 1.3, 1.3
PROMPT_LOOKUP_TOKENS = 10  # transformers' prompt_lookup_num_tokens
QUANT_THRESHOLD = 0.3  # the int8 draft's exit threshold: the best of 0.3 / 0.5 / 0.7 in the layerskip report


@torch.inference_mode()
def transformers_generate(model, ids: torch.Tensor, n_new: int, **options) -> torch.Tensor:
    return model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n_new, do_sample=False,
                          **options)


def decoders(model, skinny, int8, n_new: int) -> dict:
    """name -> (function of prompt ids -> result, the model whose speculative stats it reports or None)."""
    quant = {"threshold": QUANT_THRESHOLD, "max_draft": 8}
    hf = load_transformers(smollm2_gguf_path())
    return {
        "plain greedy": lambda ids: generate(model, ids, n_new),
        "int8 draft": lambda ids: speculative_generate(model, ids, n_new, draft_model=int8, **quant),
        "int8 + CLaSp M=2": lambda ids: speculative_generate(model, ids, n_new, draft_model=int8,
                                                             skip=CLaSp(2, 16), **quant),
        "CLaSp M=6": lambda ids: speculative_generate(model, ids, n_new, skip=CLaSp(6, 16), threshold=0.7),
        "transformers greedy": lambda ids: transformers_generate(hf, ids, n_new),
        "transformers prompt lookup": lambda ids: transformers_generate(
            hf, ids, n_new, prompt_lookup_num_tokens=PROMPT_LOOKUP_TOKENS),
        "skinny: plain greedy": lambda ids: generate(skinny, ids, n_new),
        "skinny: int8 draft": lambda ids: speculative_generate(skinny, ids, n_new, draft_model=int8, **quant),
    }


def tokens_of(result) -> torch.Tensor:
    return result if isinstance(result, torch.Tensor) else result.tokens


def validate(runs: dict, prompts: dict) -> tuple[int, int, dict]:
    """(identical runs, runs, name -> summed rounds / drafted / accepted), one untimed pass (the warm-up)."""
    same, total, stats = 0, 0, {}
    for ids in prompts.values():
        want = tokens_of(runs["plain greedy"](ids))
        for name, run in runs.items():
            result = run(ids)
            same += torch.equal(tokens_of(result), want)
            total += 1
            if hasattr(result, "stats"):
                s = stats.setdefault(name, {"rounds": 0, "drafted": 0, "accepted": 0})
                for key in s:
                    s[key] += getattr(result.stats, key)
    print(f"validated: {same} of {total} decoder x prompt outputs equal minihybrid's plain greedy decoding")
    return same, total, stats


def time_all(runs: dict, prompts: dict, repeats: int) -> dict[str, list[float]]:
    """name -> seconds per repeat summed over the prompts; each prompt's decoders timed interleaved."""
    seconds = {name: [0.0] * repeats for name in runs}
    for ids in prompts.values():
        timings = compare({name: (lambda run=run, ids=ids: run(ids)) for name, run in runs.items()},
                          repeats=repeats, warmup=0)
        for name, t in timings.items():
            for r, s in enumerate(t.seconds):
                seconds[name][r] += s
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--new-tokens", type=int, default=64)
    args = parser.parse_args()
    from minihybrid.pretrained import load_smollm2

    model, tokenizer = load_smollm2(max_seq_len=512)
    model.eval()
    skinny = use_skinny_linears(copy.deepcopy(model)).eval()
    int8 = quantize_model(copy.deepcopy(model), QuantScheme(8, None)).eval()
    prompts, calibration = prompt_set(tokenizer, 1)
    runs = decoders(model, skinny, int8, args.new_tokens)
    same, total, stats = validate(runs, prompts)
    seconds = time_all(runs, prompts, args.repeats)
    n_tokens = args.new_tokens * len(prompts)
    plain = seconds["plain greedy"]
    print(f"\nSmolLM2-135M, float32, {len(prompts)} prompts x {args.new_tokens} new tokens (prefill "
          f"included), {torch.get_num_threads()} threads, {args.repeats} interleaved repeats")
    print(f"{'decoder':<28}{'tok/s':>8}{'x plain greedy':>22}{'acceptance':>12}{'per round':>11}")
    ratios = {}
    for name, secs in seconds.items():
        ratios[name] = Spread.of([p / s for p, s in zip(plain, secs)])
        s = stats.get(name)
        acc = f"{s['accepted'] / s['drafted']:>12.2f}{(s['accepted'] + s['rounds']) / s['rounds']:>11.2f}" \
            if s and s["drafted"] else ""
        tok_s = n_tokens / sorted(secs)[len(secs) // 2]
        print(f"{name:<28}{tok_s:>8.1f}{ratios[name].format():>22}{acc}")
    skinny_ratio = Spread.of([p / s for p, s in zip(seconds["skinny: plain greedy"],
                                                    seconds["skinny: int8 draft"])])
    print(f"{'skinny: int8 draft / skinny plain':<28}{'':>8}{skinny_ratio.format():>22}")

    short = prompts["instruction 1"]
    fixed = offline_skip_sets(model, calibration, (2, 6))
    v = forward_costs(model, short, ks=range(1, 10), repeats=args.repeats + 4)
    v_skinny = forward_costs(skinny, short, ks=range(1, 10), repeats=args.repeats + 4)
    c = draft_costs(model, short, {"int8 draft": (int8, ()), "int8 + CLaSp M=2": (int8, fixed[2]),
                                   "CLaSp M=6": (model, fixed[6])}, repeats=args.repeats + 4)
    c_skinny = draft_costs(skinny, short, {"skinny: int8 draft": (int8, ())}, repeats=args.repeats + 4)
    v_linears = linear_costs(skinny, ks=range(1, 10), repeats=args.repeats + 4)
    print("\nverify cost V(k), a forward over k new tokens in single-token steps of the same model:")
    for name, costs in (("torch linears", v), ("skinny linears", v_skinny),
                        ("  the linears alone", v_linears)):
        print(f"  {name:<20}" + "  ".join(f"k={k}: {x:.2f}" for k, x in costs.items()))
    print("\ncost model E / (n c + V(n + 1)) from the measured a, n, c and V, against the measured speed-up:")
    for name, cost in (c | c_skinny).items():
        s = stats[name]
        a, n = s["accepted"] / s["drafted"], s["drafted"] / s["rounds"]
        costs = v_skinny if name.startswith("skinny") else v
        model_s = expected_speedup(a, n, cost, costs[min(9, round(n) + 1)])
        measured = skinny_ratio.median if name.startswith("skinny") else ratios[name].median
        print(f"  {name:<22} a={a:.2f} n={n:.2f} c={cost:.2f} V={costs[min(9, round(n) + 1)]:.2f} -> "
              f"predicted {model_s:.2f}x, measured {measured:.2f}x")
    print()
    best = max((n for n in stats if not n.startswith("skinny")), key=lambda n: ratios[n].median)
    print(target_line(f"self-speculative ({best}) vs plain greedy tokens/s", ratios[best].median, ">=",
                      TARGET_SPEEDUP))
    print(target_line("skinny engine: int8 draft vs plain greedy tokens/s", skinny_ratio.median, ">=",
                      TARGET_SPEEDUP))
    print(target_line("identical greedy outputs (runs)", same, ">=", total))
    print(target_line("verify cost V(9), torch linears (single-token steps)", v[9], "<=", TARGET_VERIFY))
    print(target_line("verify cost V(9), skinny linears (single-token steps)", v_skinny[9], "<=",
                      TARGET_VERIFY))


if __name__ == "__main__":
    main()
