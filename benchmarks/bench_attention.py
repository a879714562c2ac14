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

import numba
import torch

from minihybrid.kernels.attention.speed import HEAD_DIM, HEADS, time_backends
from minihybrid.timing import ratio, target_line

REFERENCE_MAX_N = 2048
TARGET_N, TARGET_RATIO = 2048, 2.0
MAX_DIFF = 1e-4  # numba and the reference vs SDPA, float32


def bench(n: int, repeats: int):
    """Timings per backend at sequence length n, and the max |difference| to SDPA (checked first)."""
    backends = ["torch", "numba"] + (["reference"] if n <= REFERENCE_MAX_N else [])
    timings, diff = time_backends(n, backends, repeats)
    if diff > MAX_DIFF:
        raise SystemExit(f"the backends disagree at n={n}: max |diff| = {diff:.1e} > {MAX_DIFF:g}")
    return timings, diff


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
        ref = timings["reference"].spread_ms.format(".1f") if "reference" in timings else "-"
        print(f"{n:>6} {timings['torch'].spread_ms.format('.1f'):>20} "
              f"{timings['numba'].spread_ms.format('.1f'):>20} {ratios[n].format():>18} "
              f"{ref:>22} {diff:10.1e}")
    print(f"numba threading layer: {numba.threading_layer()}")
    print(target_line(f"numba/sdpa time at n={TARGET_N}", ratios[TARGET_N].median, "<=", TARGET_RATIO))


if __name__ == "__main__":
    main()
