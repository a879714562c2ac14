"""The layerskip reproduction's write-up: its tables and its claims table with verdicts.

`results` holds layerskip.run's measurements: "speed" (decoder -> compare_decoders row; "plain" has tok_s
only), "draft_cost" (draft -> c), "verify_cost" (k -> V(k)), "layers" (cosines (L+1, L+1), single_skip per
block), "fixed" (M -> the offline skip set) and "prompts" (name -> prompt tokens).
"""

from __future__ import annotations

import re
import statistics

from minihybrid.reproduce import Claim, markdown_table
from minihybrid.speculative import expected_speedup


def cost_key(decoder: str) -> str:
    """The draft_cost entry that prices a decoder's draft step: skipping M blocks costs the same whichever
    M blocks they are (the LM head and embedding always run)."""
    m = re.search(r"M=(\d+)", decoder)
    if decoder.startswith("int8 + "):
        return f"int8 + skip M={m.group(1)}"
    return f"skip M={m.group(1)}" if m else decoder.split(" th=")[0]


def predicted(results: dict, decoder: str, acceptance: float | None = None) -> float:
    """The cost model's speed-up from the decoder's measured drafted tokens per round, c and V, at its
    measured acceptance or at `acceptance` (1: the bound c and V set, every drafted token accepted)."""
    row, v = results["speed"][decoder], results["verify_cost"]
    n = row["drafted_per_round"]
    k = min(max(v), round(n) + 1)
    a = row["acceptance"] if acceptance is None else acceptance
    return expected_speedup(a, n, results["draft_cost"][cost_key(decoder)], v[k])


def decoders_only(results: dict) -> dict[str, dict]:
    return {name: r for name, r in results["speed"].items() if name != "plain"}


def same_runs(decoders) -> tuple[int, int]:
    """(runs with output identical to plain greedy, runs) over decoder x prompt."""
    return sum(r["identical"] for r in decoders), sum(r["prompts"] for r in decoders)


def describe(setup, results: dict) -> str:
    plain = results["speed"]["plain"]
    rows = [[name, f"{r['acceptance']:.2f}", f"{r['mean_accepted']:.2f}", f"{r['drafted_per_round']:.2f}",
             f"{r['tok_s']:.1f}", f"**{r['speedup']:.2f}**", f"{predicted(results, name):.2f}",
             f"{predicted(results, name, acceptance=1.0):.2f}", time_shares(r),
             f"{r['identical']}/{r['prompts']}"]
            for name, r in decoders_only(results).items()]
    costs = [[name, f"{c:.2f}", f"{1 / c:.2f}"] for name, c in results["draft_cost"].items()]
    v = results["verify_cost"]
    fixed = "; ".join(f"M={m}: {s}" for m, s in results["fixed"].items())
    return "\n\n".join([
        (f"**SmolLM2-135M**, float32, greedy, {len(results['prompts'])} prompts (Shakespeare and Python "
         f"continuations, instruction and code chat prompts) x {setup.n_new} new tokens, 2 threads. Every "
         f"decoder drafts up to {setup.max_draft} tokens and stops after one whose top-1 probability is "
         f"below {setup.threshold} (skipping drafts, CLaSp's best) or {setup.quant_threshold} (quantized "
         "drafts, unless the name says otherwise); the full float32 model verifies each round in one "
         "forward pass. Plain "
         f"greedy decoding runs at **{plain['tok_s']:.1f} tokens/s**; each decoder runs right after it on "
         "the same prompt, and the speed-up is plain's decode seconds over the decoder's, summed over the "
         "prompts. \"Predicted\" is the cost model E / (n c + V(n + 1)) from the decoder's measured "
         "acceptance a, drafted tokens per round n, draft cost c and verify cost V; \"bound (a = 1)\" the "
         "same with every drafted token accepted, (n + 1) / (n c + V(n + 1)): what the measured c and V "
         "allow at that draft length. The rest of the time is acceptance, rollback and Python."),
        markdown_table(["decoder", "acceptance", "accepted / round", "drafted / round", "tokens/s",
                        "speed-up", "predicted", "bound (a = 1)", "time: draft / verify / select / rest",
                        "identical"], rows),
        f"Fixed skip sets (CLaSp's DP once, on a calibration prompt): {fixed}.",
        ("Draft step cost c, in full single-token steps (measured interleaved), and 1 / c, the speed-up of a "
         "draft that is never wrong, drafts without end and is verified for free:"),
        markdown_table(["draft", "c", "1 / c"], costs),
        "Verify cost V(k): one full forward over k new tokens, in single-token steps:",
        markdown_table([f"k={k}" for k in v], [[f"{x:.2f}" for x in v.values()]]),
        skinny_text(results),
        (f"Skipping one block at a time (teacher-forced top-1 agreement): best block "
         f"{best_single(results)[0]} ({best_single(results)[1]:.2f}); blocks 0 and 1: "
         f"{results['layers']['single_skip'][0]:.2f} and {results['layers']['single_skip'][1]:.2f}."),
    ])


def time_shares(row: dict) -> str:
    """A decoder's shares of its decode time: draft / verify / select / the rest."""
    shares = [row["draft_share"], row["verify_share"], row["select_share"]]
    return " / ".join(f"{x:.0%}" for x in [*shares, 1 - sum(shares)])


def skinny_text(results: dict) -> str:
    """The int8 draft on the engine whose float32 linears run the skinny kernel, vs plain greedy on it."""
    engine = results["skinny"]
    plain = engine["speed"]["plain"]["tok_s"]
    rows = [[name, f"{r['acceptance']:.2f}", f"{r['drafted_per_round']:.2f}", f"{r['tok_s']:.1f}",
             f"**{r['speedup']:.2f}**", f"{r['identical']}/{r['prompts']}"]
            for name, r in engine["speed"].items() if name != "plain"]
    v = engine["verify_cost"]
    return "\n\n".join([
        (f"**The same with skinny float32 linears** (`minihybrid.fast_linear`: each weight row read once for "
         f"all rows, batch invariant). Plain greedy decoding runs at **{plain:.1f} tokens/s** "
         f"({plain / results['speed']['plain']['tok_s']:.2f}x torch's linears); the int8 draft costs c = "
         f"{engine['draft_cost']['int8']:.2f} of its step and the verify pass V(k) = "
         + ", ".join(f"{x:.2f}" for x in v.values()) + f" for k = 1..{max(v)}:"),
        markdown_table(["decoder (skinny engine)", "acceptance", "drafted / round", "tokens/s",
                        "speed-up over plain (skinny)", "identical"], rows),
    ])


def best_skinny(results: dict) -> tuple[str, dict]:
    speed = decoders_only(results["skinny"])
    name = max(speed, key=lambda n: speed[n]["speedup"])
    return name, speed[name]


def best_single(results: dict) -> tuple[int, float]:
    singles = results["layers"]["single_skip"]
    block = max(range(len(singles)), key=singles.__getitem__)
    return block, singles[block]


def middle_cosine(results: dict) -> float:
    """Median cosine between consecutive residual streams over the middle blocks (2 .. L-2)."""
    cos = results["layers"]["cosines"]
    return statistics.median(cos[i][i + 1] for i in range(2, len(cos) - 2))


def claims(setup, results: dict) -> list[Claim]:
    speed = decoders_only(results)
    clasp = {name: r for name, r in speed.items() if name.startswith("CLaSp")}
    best_clasp = max(clasp, key=lambda n: clasp[n]["speedup"])
    bc = clasp[best_clasp]
    best_draft = max(speed, key=lambda n: speed[n]["speedup"])
    bd = speed[best_draft]
    skinny_name, skinny_best = best_skinny(results)
    torch_same, torch_runs = same_runs(speed.values())
    skinny_same, skinny_runs = same_runs(decoders_only(results["skinny"]).values())
    identical, runs = torch_same + skinny_same, torch_runs + skinny_runs
    c_best = results["draft_cost"][cost_key(best_clasp)]
    v = results["verify_cost"]
    v_best = v[min(max(v), round(bd["drafted_per_round"]) + 1)]
    high = [m for m in setup.skip_counts if m >= 12]
    high_acc = {m: speed[f"CLaSp M={m}"]["acceptance"] for m in high}
    kinds = {kind: {key: statistics.fmean(speed[f"{kind} M={m}"][key] for m in setup.skip_counts)
                    for key in ("acceptance", "speedup")} for kind in ("fixed", "random", "CLaSp")}
    margin = {kind: kinds["CLaSp"]["acceptance"] - kinds[kind]["acceptance"] for kind in ("fixed", "random")}
    return [
        Claim("CLaSp speeds up greedy decoding 1.24x (LLaMA-3-8B) to 1.67x (LLaMA-3-70B)",
              (f"best CLaSp setting ({best_clasp}): {bc['speedup']:.2f}x, acceptance {bc['acceptance']:.2f}, "
               f"{bc['mean_accepted']:.2f} accepted per round (cost model: "
               f"{predicted(results, best_clasp):.2f}x)"),
              verdict(bc["speedup"], 1.24),
              (f"135M has few redundant layers: acceptance falls fast with M, while a draft step at "
               f"{best_clasp.split(' K=')[0].removeprefix('CLaSp ')} still costs c = {c_best:.2f} (the LM "
               "head, 28M of the 135M weights, and the per-block overhead stay) and the verify pass costs "
               f"V(2..9) = {min(list(v.values())[1:]):.2f}-{max(v.values()):.2f} single steps. The gain "
               "grows with depth and width (8B 1.24x, 70B 1.67x)")),
        Claim("Lossless: the output is exactly the target model's greedy output",
              (f"{identical} of {runs} decoder x prompt runs identical to plain greedy decoding "
               f"(torch linears {torch_same}/{torch_runs}, skinny engine {skinny_same}/{skinny_runs})"),
              "holds" if identical == runs else "partly",
              ("the full model verifies every token. With torch's float32 linears a forward over k tokens "
               "rounds differently from k single-token steps, so a near tie could flip a token"
               + ("" if torch_same == torch_runs else ", which happened here")
               + ". On the skinny engine every part of a cached step is batch invariant, so a verify pass "
               "gives bitwise the logits of k single-token steps: identical outputs by construction")),
        Claim("Layers are redundant: 40-60% of them can be skipped while drafts stay accurate",
              (f"consecutive residual streams: median cosine {middle_cosine(results):.3f} over the middle "
               f"blocks; yet CLaSp's acceptance at M = {', '.join(map(str, high))}: "
               f"{', '.join(f'{a:.2f}' for a in high_acc.values())}"),
              "does not hold" if max(high_acc.values(), default=0) < 0.5 else "partly",
              ("a high cosine between consecutive streams says each block adds a small update, not that the "
               "update is unimportant: at 135M every skipped block changes the top-1 token often "
               f"(skipping block 0 or 1 alone: agreement {results['layers']['single_skip'][0]:.2f}, "
               f"{results['layers']['single_skip'][1]:.2f})")),
        Claim("CLaSp's in-context DP beats static and random skip sets",
              ("mean over M of acceptance / speed-up: " + ", ".join(
                  f"{kind} {k['acceptance']:.2f} / {k['speedup']:.2f}x" for kind, k in kinds.items())),
              ("holds" if min(margin.values()) > CLEAR_MARGIN else
               "partly" if margin["random"] > CLEAR_MARGIN else "does not hold"),
              ("the DP picks far better blocks than chance; against a set the same DP chose once on another "
               "prompt (static, Self-SD-like) re-selecting on the last verified token gains "
               f"{margin['fixed']:+.2f} acceptance, and the selection passes cost time the static set "
               "saves")),
        Claim("A cheaper draft of the same model decodes faster with identical output (speculative decoding)",
              (f"best draft {best_draft}: {bd['speedup']:.2f}x over plain greedy, acceptance "
               f"{bd['acceptance']:.2f}, {bd['tok_s']:.1f} vs {results['speed']['plain']['tok_s']:.1f} "
               f"tokens/s; with skinny linears on both sides {skinny_name}: {skinny_best['speedup']:.2f}x "
               f"({skinny_best['tok_s']:.1f} vs {results['skinny']['speed']['plain']['tok_s']:.1f} "
               "tokens/s)"),
              verdict(max(bd["speedup"], skinny_best["speedup"]), 1.3),
              (f"module 05's int8 weights propose nearly the full model's tokens (acceptance "
               f"{bd['acceptance']:.2f}) at c = {results['draft_cost'][cost_key(best_draft)]:.2f} of a step, "
               f"but torch's float32 verify over n + 1 tokens costs V = {v_best:.2f} single steps (its "
               "one-row path is a faster kernel than its few-row one). The skinny kernel makes the verify "
               "nearly free but speeds plain decoding up as much, so the draft's relative cost c rises to "
               f"{results['skinny']['draft_cost']['int8']:.2f}; the course's target is 1.3x")),
    ]


CLEAR_MARGIN = 0.05  # acceptance gap that counts as beating a baseline (prompt-to-prompt noise is ~0.03)


def verdict(speedup: float, goal: float) -> str:
    return "holds" if speedup >= goal else ("partly" if speedup > 1 else "does not hold")
