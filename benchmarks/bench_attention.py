"""Benchmark: the Numba CPU attention kernel vs the "torch" backend (PyTorch's fused SDPA) on CPU.

B=1, 8 heads, head dim 64, float32, causal. Each size is validated first (numba against SDPA), then the
backends are timed with `minihybrid.timing.compare` (warm-up, interleaved repeats) and reported as median
(min-max) milliseconds and per-repeat time ratios. The "reference" backend (explicit score matrix) is shown
for n <= 2048 for context. n = 2048, the size of the target, is always measured.

    python benchmarks/bench_attention.py            # n = 512, 2048, 8192
    python benchmarks/bench_attention.py --quick    # n = 512, 2048
    python benchmarks/bench_attention.py --sizes 1024 4096 --repeats 11
"""

from __future__ import annotations

import argparse
import functools

import numba
import torch

from minihybrid.kernels.attention import attention
from minihybrid.timing import Spread, Timing, compare, ratio, target_line

HEADS, HEAD_DIM, REFERENCE_MAX_N = 8, 64, 2048
TARGET_N, TARGET_RATIO = 2048, 2.0
MAX_DIFF = 1e-4  # numba vs SDPA, float32


def ms(timing: Timing) -> str:
    return Spread.of([1e3 * s for s in timing.seconds]).format(".1f")


def bench(n: int, repeats: int) -> tuple[dict[str, Timing], float]:
    """Timings per backend at sequence length n, and the max |numba - sdpa| difference (checked first)."""
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, HEADS, n, HEAD_DIM, generator=g) for _ in range(3))
    backends = ["torch", "numba"] + (["reference"] if n <= REFERENCE_MAX_N else [])
    fns = {b: functools.partial(attention, q, k, v, causal=True, backend=b) for b in backends}
    diff = (fns["numba"]() - fns["torch"]()).abs().max().item()
    if diff > MAX_DIFF:
        raise SystemExit(f"numba and sdpa disagree at n={n}: max |diff| = {diff:.1e} > {MAX_DIFF:g}")
    return compare(fns, repeats=repeats), diff


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 2048, 8192], help="sequence lengths")
    parser.add_argument("--quick", action="store_true", help="only n = 512 and 2048")
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per backend and size")
    parser.add_argument("--threads", type=int, default=numba.config.NUMBA_NUM_THREADS,
                        help="threads for both numba and torch (default: numba's default)")
    args = parser.parse_args()
    sizes = sorted({*([512, 2048] if args.quick else args.sizes), TARGET_N})

    numba.set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    print(f"B=1, heads={HEADS}, d={HEAD_DIM}, float32, causal; median (min-max) of {args.repeats} "
          "interleaved repeats")
    print(f"threads: numba={numba.get_num_threads()}, torch={torch.get_num_threads()}")
    header = (f"{'n':>6} {'sdpa ms':>20} {'numba ms':>20} {'numba/sdpa':>18} {'reference ms':>22} "
              f"{'max|diff|':>10}")
    print(header)
    print("-" * len(header))
    ratios = {}
    for n in sizes:
        timings, diff = bench(n, args.repeats)
        ratios[n] = ratio(timings["numba"], timings["torch"])
        ref = ms(timings["reference"]) if "reference" in timings else "-"
        print(f"{n:>6} {ms(timings['torch']):>20} {ms(timings['numba']):>20} {ratios[n].format():>18} "
              f"{ref:>22} {diff:10.1e}")
    print(f"numba threading layer: {numba.threading_layer()}")
    print(target_line(f"numba/sdpa time at n={TARGET_N}", ratios[TARGET_N].median, "<=", TARGET_RATIO))


if __name__ == "__main__":
    main()
