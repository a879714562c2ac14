"""The compress reproduction's write-up: its tables and its claims table with verdicts.

`results` holds the rows of compress.run: "variants" (variant, what, nll, ppl, weight_mb, decode_tok_s,
prefill_tok_s, build_s), "costs" (variant -> {k: forward over k tokens / forward over 1}), "shares"
(variant -> step_s, linear_s, other_share of a decode step) and "sparsity" (variant -> sparsity_report rows).
"""

from __future__ import annotations

from minihybrid.reproduce import Claim, markdown_table


def by_name(results: dict) -> dict[str, dict]:
    return {r["variant"]: r for r in results["variants"]}


def pruned_share(report: list[dict]) -> float:
    """Zeros over all weights of the linears in a prune.sparsity_report."""
    return sum(r["zeros"] for r in report) / sum(n * k for n, k in (r["shape"] for r in report))


def describe(setup, results: dict) -> str:
    rows = by_name(results)
    fp32 = rows["fp32"]
    table = [[name, r["what"], f"{r['ppl']:.3f}", f"{r['weight_mb']:.1f}",
              f"{r['weight_mb'] / fp32['weight_mb']:.2f}", f"{r['decode_tok_s']:.1f}",
              f"{r['decode_tok_s'] / fp32['decode_tok_s']:.2f}", f"{r['prefill_tok_s']:.0f}",
              f"{r['build_s']:.1f}"]
             for name, r in rows.items()]
    cost_rows = [[name, *(f"{c:.2f}" for c in by_k.values())] for name, by_k in results["costs"].items()]
    ks = list(next(iter(results["costs"].values())))
    share_rows = [[name, f"{1e3 * s['step_s']:.1f}", f"{1e3 * s['linear_s']:.1f}", f"{s['other_share']:.0%}"]
                  for name, s in results["shares"].items()]
    pruned = [[name, f"{pruned_share(report):.1%}"] for name, report in results["sparsity"].items()]
    return "\n\n".join([
        (f"**SmolLM2-135M**, every variant built from the same float32 weights. Held-out Shakespeare "
         f"perplexity over {setup.eval_windows} windows of {setup.window} tokens; GPTQ and Wanda calibrated "
         f"on {setup.calib_windows} windows of {setup.calib_len} tokens of the train split (the paper: 128 "
         "of 2048). Weight memory counts every stored tensor once. Decode: greedy, a "
         f"{setup.decode_prompt}-token prompt plus {setup.decode_new} new tokens, all variants timed "
         f"interleaved, median of {setup.decode_repeats}; prefill: one forward over {setup.prefill_len} "
         "tokens. Quantized linears run the Numba kernels of `kernels/quant_matmul` on the packed codes; "
         "pruned models are float32 with zeros (no sparse kernel). The file was stored as Q4_1 (4-bit "
         "codes in groups of 32, each with a float scale and minimum), so float32 here is a 4-bit model "
         "written out, and every scheme re-quantizes it onto another grid. Under g128, the linears with 576 "
         "inputs (all but the MLP down projections, 80% of the weights) take groups of 64: 576 does not "
         "split into 128."),
        markdown_table(["variant", "what", "ppl", "weights MB", "x fp32", "decode tok/s", "x fp32",
                        "prefill tok/s", "build s"], table),
        ("A cached forward over k new tokens, in one-token forwards (the verify step of speculative "
         "decoding: module 04):"),
        markdown_table(["variant", *(f"k={k}" for k in ks)], cost_rows),
        ("Where a decode step's time goes (the step timed on its own, then the same linear-layer calls "
         "replayed on their own; q|k|v and gate|up are one call each in the quantized models):"),
        markdown_table(["variant", "ms per token", "ms in linears", "outside the linears"], share_rows),
        "Achieved sparsity of the pruned linears (every block's; the embedding and tied head stay dense):",
        markdown_table(["variant", "zeros"], pruned),
    ])


def _closes(results: dict, better: str, worse: str) -> tuple[str, float]:
    """Verdict that `better` has the lower perplexity, and the share of `worse`'s gap to fp32 it closes."""
    rows = by_name(results)
    gap = rows[worse]["nll"] - rows["fp32"]["nll"]
    closed = (rows[worse]["nll"] - rows[better]["nll"]) / gap if gap > 0 else 0.0
    return ("holds" if closed >= 0.25 else "partly" if closed > 0 else "does not hold"), closed


def claims(results: dict) -> list[Claim]:
    rows = by_name(results)
    fp32, bf16, int8, int4 = rows["fp32"], rows["bf16"], rows["int8 RTN"], rows["int4 RTN g128"]

    def gains(r: dict) -> tuple[float, float, float]:
        """(decode speed-up, memory ratio, perplexity change) against float32."""
        return (r["decode_tok_s"] / fp32["decode_tok_s"], r["weight_mb"] / fp32["weight_mb"],
                r["ppl"] / fp32["ppl"] - 1)

    kept = [name for name, r in rows.items() if abs(gains(r)[2]) <= 0.05]  # quality within 5% of fp32
    best = max(kept, key=lambda name: gains(rows[name])[0])
    speed, memory, _ = gains(rows[best])
    text = {name: "decode {:.2f}x, memory {:.2f}x, perplexity {:+.1%}".format(*gains(rows[name]))
            for name in ("int8 RTN", "int4 RTN g128", "int4 GPTQ g128")}
    out = [Claim(
        "Efficient inference: over 30% faster and 40% less memory (the survey's headline)",
        "against float32: " + "; ".join(f"{name} {t}" for name, t in text.items())
        + f" (int4 vs bfloat16: decode {int4['decode_tok_s'] / bf16['decode_tok_s']:.2f}x); best within 5% "
        f"of float32's perplexity: {best}",
        "holds" if speed >= 1.3 and memory <= 0.6 else "partly" if speed > 1 or memory <= 0.6 else
        "does not hold",
        "Judged on the fastest variant within 5% of float32's perplexity (int8 keeps quality: "
        f"{int8['ppl']:.2f} vs {fp32['ppl']:.2f}). int4 is faster per byte but costs quality at 135M: the "
        "weights already sit on the file's 4-bit grid, and a second rounding onto another grid adds its "
        "error on top. A decode step reads every weight once, so fewer bytes mean a faster step, up to the "
        "share of the step spent outside the linears.")]
    verdict, closed = _closes(results, "int4 GPTQ g128", "int4 RTN g128")
    out.append(Claim(
        "GPTQ beats round-to-nearest at 4 bits (OPT-125M g128: 29.39 vs 30.49, fp16 27.65)",
        f"perplexity fp32 {fp32['ppl']:.3f}, RTN g128 {int4['ppl']:.3f}, GPTQ g128 "
        f"{rows['int4 GPTQ g128']['ppl']:.3f}: GPTQ closes {closed:.0%} of RTN's gap",
        verdict, "'holds' when GPTQ closes at least a quarter of RTN's gap to float32, 'partly' when less."))
    verdict, closed = _closes(results, "50% Wanda", "50% magnitude")
    out.append(Claim(
        "Wanda beats magnitude pruning at 50% (LLaMA-2-7B: 6.42 vs 14.89, dense 5.12)",
        f"perplexity fp32 {fp32['ppl']:.2f}, 50% magnitude {rows['50% magnitude']['ppl']:.2f}, 50% Wanda "
        f"{rows['50% Wanda']['ppl']:.2f}, 2:4 Wanda {rows['2:4 Wanda']['ppl']:.2f}: Wanda closes "
        f"{closed:.0%} of magnitude's gap",
        verdict, "'holds' when Wanda closes at least a quarter of magnitude's gap to float32."))
    ratio = rows["50% Wanda"]["decode_tok_s"] / fp32["decode_tok_s"]
    out.append(Claim(
        "Unstructured sparsity gives no CPU speed-up without sparse kernels",
        f"50% Wanda decodes at {ratio:.2f}x float32's tokens/s (2:4: "
        f"{rows['2:4 Wanda']['decode_tok_s'] / fp32['decode_tok_s']:.2f}x)",
        "holds" if ratio < 1.1 else "does not hold",
        "The zeros are stored and multiplied like any weight; 'holds' below a 1.1x speed-up."))
    return out
