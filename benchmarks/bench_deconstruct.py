"""Benchmark: what each of module 02's variants of attention costs to decode, and the Taylor form's two ways.

1. Decode cost: a model of the deconstruct reproduction's full size (8 blocks of width 256), uniform in each
   variant, against standard attention: cache bytes per token of context and decode tokens/s after a
   context, timed interleaved (minihybrid/context_cost.py, as module 01's reproduction does).
2. The Taylor (Based) form: its linear-time chunked form against its quadratic form on one head (f = 16,
   Dv = 32, float32) at lengths 128 to 16K; validated first (the two agree), then timed interleaved. The
   crossover is the shortest length from which the linear form stays faster.

    python benchmarks/bench_deconstruct.py
    python benchmarks/bench_deconstruct.py --repeats 9 --context 4096
"""

from __future__ import annotations

import argparse
from dataclasses import replace

import torch

from minihybrid.context_cost import cache_megabytes, decode_timings
from minihybrid.layers.taylor import taylor_linear, taylor_quadratic
from minihybrid.model import HybridLM
from minihybrid.patterns import VARIANTS
from minihybrid.reproduce import deconstruct
from minihybrid.timing import compare, ratio, target_line

LENGTHS = tuple(128 * 2**i for i in range(8))  # 128 .. 16384
FEATURE_DIM, VALUE_DIM, CHUNK = 16, 32, 64
MAX_DIFF = 1e-4


def decode_cost(repeats: int, context: int, n_new: int = 16) -> None:
    """Cache bytes per token and decode tokens/s of each variant (uniform) relative to standard attention."""
    base = deconstruct.settings().model
    n_layers = 8
    config = replace(base, max_seq_len=context + n_new)  # FixedSeqQK takes its default (seeded) passage
    torch.manual_seed(0)
    models = {name: HybridLM(config.with_pattern(letter * n_layers)) for name, letter in VARIANTS.items()}
    timings = decode_timings(models, context, n_new, repeats)
    print(f"Decoding, {n_layers} blocks of width {base.d_model} ({base.n_heads} heads), one sequence, "
          f"{n_new} new tokens after {context} tokens of context; median (min-max) of {repeats} interleaved "
          "repeats")
    header = f"{'variant':>16} {'cache B/token':>14} {'/ standard':>11} {'tokens/s':>10} {'/ standard':>20}"
    print(header)
    print("-" * len(header))
    standard_cache = cache_megabytes(models["standard"], context)
    for name, model in models.items():
        cache = cache_megabytes(model, context)
        speed = ratio(timings["standard"], timings[name])
        print(f"{name:>16} {cache * 2**20 / context:>14,.0f} {cache / standard_cache:>11.3f} "
              f"{n_new / timings[name].median:>10.0f} {speed.format():>20}")


@torch.no_grad()
def time_forms(length: int, repeats: int):
    """(timings of both forms, their max |difference|) on one head of random inputs of `length` tokens."""
    g = torch.Generator().manual_seed(length)
    q, k = (torch.randn(1, 1, length, FEATURE_DIM, generator=g) / 2 for _ in range(2))
    v = torch.randn(1, 1, length, VALUE_DIM, generator=g)
    diff = (taylor_linear(q, k, v, chunk_size=CHUNK)[0] - taylor_quadratic(q, k, v)).abs().max().item()
    if diff > MAX_DIFF:
        raise SystemExit(f"the two forms disagree at T={length}: max |diff| = {diff:.1e}")
    timings = compare({"quadratic": lambda: taylor_quadratic(q, k, v),
                       "linear": lambda: taylor_linear(q, k, v, chunk_size=CHUNK)}, repeats=repeats)
    return timings, diff


def taylor_forms(repeats: int) -> None:
    """Linear (chunked) vs quadratic Taylor attention on one head; the crossover and the 16K ratio."""
    print(f"\nTaylor attention, one head, f={FEATURE_DIM}, Dv={VALUE_DIM}, float32, chunk {CHUNK}: quadratic "
          f"vs linear form; median (min-max) ms of {repeats} interleaved repeats")
    header = f"{'T':>6} {'quadratic ms':>22} {'linear ms':>22} {'quadratic/linear':>20} {'max|diff|':>10}"
    print(header)
    print("-" * len(header))
    speedups = {}
    for length in LENGTHS:
        timings, diff = time_forms(length, repeats)
        speedups[length] = ratio(timings["quadratic"], timings["linear"])
        print(f"{length:>6} {timings['quadratic'].spread_ms.format('.2f'):>22} "
              f"{timings['linear'].spread_ms.format('.2f'):>22} {speedups[length].format():>20} {diff:10.1e}")
    faster = [n for n in LENGTHS if all(speedups[m].median > 1 for m in LENGTHS if m >= n)]
    crossover = faster[0] if faster else float("inf")
    print(f"crossover: the linear form is faster from T={crossover} on")
    print(target_line("Taylor linear form overtakes the quadratic form by T=16384 (crossover length)",
                      crossover, "<=", LENGTHS[-1]))
    print(target_line("Taylor quadratic/linear time at T=16384", speedups[LENGTHS[-1]].median, ">", 1.0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per candidate")
    parser.add_argument("--context", type=int, default=2048, help="decode context length")
    args = parser.parse_args()
    decode_cost(args.repeats, args.context)
    taylor_forms(args.repeats)


if __name__ == "__main__":
    main()
