"""Benchmark: Numba CPU attention vs torch's scaled_dot_product_attention (is_causal=True) on CPU.

B=1, 8 heads, head dim 64, float32, causal. Each size is warmed up, then the backends are timed in turn
(interleaved, so a noisy machine affects them alike) and the median of the repeats is reported.
The reference backend (explicit score matrix) is shown for n <= 2048 for context.

    python benchmarks/bench_attention.py            # n = 512, 2048, 8192
    python benchmarks/bench_attention.py --quick    # n = 512, 2048
    python benchmarks/bench_attention.py --sizes 1024 4096 --repeats 11
"""

from __future__ import annotations

import argparse
import statistics
import time

import numba
import torch
import torch.nn.functional as F

from minihybrid.kernels.attention import attention

HEADS, HEAD_DIM, TARGET_N, TARGET_RATIO = 8, 64, 2048, 2.0


def _time_ms(fn) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1e3


def bench(n: int, repeats: int) -> dict[str, float]:
    """Median milliseconds per backend at sequence length n, plus the max |numba - sdpa| difference."""
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, HEADS, n, HEAD_DIM, generator=g) for _ in range(3))
    fns = {
        "sdpa": lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True),
        "numba": lambda: attention(q, k, v, causal=True, backend="numba"),
    }
    if n <= 2048:
        fns["reference"] = lambda: attention(q, k, v, causal=True, backend="torch")
    for fn in fns.values():  # warm-up (and Numba compilation)
        fn()
        fn()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            times[name].append(_time_ms(fn))
    result = {name: statistics.median(ts) for name, ts in times.items()}
    result["max_diff"] = (fns["numba"]() - fns["sdpa"]()).abs().max().item()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 2048, 8192], help="sequence lengths")
    parser.add_argument("--quick", action="store_true", help="only n = 512 and 2048")
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per backend and size")
    parser.add_argument("--threads", type=int, default=numba.config.NUMBA_NUM_THREADS,
                        help="threads for both numba and torch (default: numba's default)")
    args = parser.parse_args()
    sizes = [512, 2048] if args.quick else args.sizes

    numba.set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    print(f"B=1, heads={HEADS}, d={HEAD_DIM}, float32, causal; median of {args.repeats} runs")
    print(f"threads: numba={numba.get_num_threads()}, torch={torch.get_num_threads()}")
    header = (f"{'n':>6} {'sdpa ms':>9} {'numba ms':>9} {'numba/sdpa':>11} {'reference ms':>13} "
              f"{'max|diff|':>10}")
    print(header)
    print("-" * len(header))
    ratios = {}
    for n in sizes:
        r = bench(n, args.repeats)
        ratios[n] = r["numba"] / r["sdpa"]
        ref = f"{r['reference']:13.1f}" if "reference" in r else f"{'-':>13}"
        print(f"{n:>6} {r['sdpa']:9.1f} {r['numba']:9.1f} {ratios[n]:11.2f} {ref} {r['max_diff']:10.1e}")
    print(f"numba threading layer: {numba.threading_layer()}")
    if TARGET_N in ratios:
        met = "met" if ratios[TARGET_N] <= TARGET_RATIO else "NOT met"
        print(f"target at n={TARGET_N}: numba/sdpa = {ratios[TARGET_N]:.2f} <= {TARGET_RATIO} -> {met}")


if __name__ == "__main__":
    main()
