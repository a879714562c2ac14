"""Benchmark: the Numba CPU SSD scan vs the token-by-token reference and the chunked PyTorch form ("torch").

Batch 1, 8 heads, head dim P=64, state size N=64, one B/C group, float32, Mamba-2 value ranges
(kernels/scan/speed.py). Each length is validated first (every backend's y and final state against the first
backend's), then the backends are timed with `minihybrid.timing.compare` (warm-up, interleaved repeats) and
reported as median (min-max) milliseconds and per-repeat speedups. The reference is a Python loop over the
tokens, so it runs only up to L=4096, the length of its target. With a CUDA GPU, the numba.cuda kernel is also
timed against the chunked form on the GPU (no target). Last, a 1:5 hybrid's decode cache and speed against
pure attention of the same width and depth (minihybrid/context_cost.py, as in the hybrid reproduction).

    python benchmarks/bench_scan.py                  # L = 512, 4096, 16384
    python benchmarks/bench_scan.py --repeats 9 --threads 1
"""

from __future__ import annotations

import argparse
from dataclasses import replace

import numba
import torch

from minihybrid.context_cost import cache_megabytes, decode_timings
from minihybrid.kernels import numba_cuda
from minihybrid.kernels.scan.speed import D_STATE, HEAD_DIM, HEADS, time_backends
from minihybrid.model import HybridLM
from minihybrid.reproduce import hybrid
from minihybrid.timing import ratio, target_line

LENGTHS = (512, 4096, 16384)  # the chunked-form target is checked at each of these
TARGET_REFERENCE_LENGTH, TARGET_REFERENCE_SPEEDUP = 4096, 20.0
MAX_DIFF = 1e-4  # float32 outputs of every backend vs the first; |y| reaches ~20 at these inputs


def timed(length: int, backends, repeats: int, device="cpu"):
    """Timings per backend at `length` tokens; stops the benchmark if the backends disagree."""
    timings, diff = time_backends(length, backends, repeats, device=device)
    if diff > MAX_DIFF:
        raise SystemExit(f"the backends disagree at L={length}: max |diff| = {diff:.1e} > {MAX_DIFF:g}")
    return timings, diff


def scan_cpu(repeats: int) -> None:
    """numba vs reference and torch (chunked) on the CPU, with the target lines."""
    print(
        f"SSD scan on CPU: batch=1, heads={HEADS}, P={HEAD_DIM}, N={D_STATE}, G=1, float32, chunk_size=64; "
        f"median (min-max) of {repeats} interleaved repeats"
    )
    print(f"threads: numba={numba.get_num_threads()}, torch={torch.get_num_threads()}")
    header = (
        f"{'L':>6} {'reference ms':>22} {'torch ms':>20} {'numba ms':>20} {'reference/numba':>20} "
        f"{'torch/numba':>18} {'max|diff|':>10}"
    )
    print(header)
    print("-" * len(header))
    vs_reference, vs_torch = {}, {}
    for length in LENGTHS:
        timings, diff = timed(length, ("reference", "torch", "numba"), repeats)
        vs_torch[length] = ratio(timings["torch"], timings["numba"])
        ref, ref_ratio = "-", "-"
        if "reference" in timings:
            vs_reference[length] = ratio(timings["reference"], timings["numba"])
            ref = timings["reference"].spread_ms.format(".1f")
            ref_ratio = vs_reference[length].format(".1f")
        print(
            f"{length:>6} {ref:>22} {timings['torch'].spread_ms.format('.1f'):>20} "
            f"{timings['numba'].spread_ms.format('.2f'):>20} {ref_ratio:>20} "
            f"{vs_torch[length].format():>18} {diff:10.1e}"
        )
    print(f"numba threading layer: {numba.threading_layer()}")
    print(
        target_line(
            f"numba scan vs sequential PyTorch reference at L={TARGET_REFERENCE_LENGTH} (speedup)",
            vs_reference[TARGET_REFERENCE_LENGTH].median,
            ">=",
            TARGET_REFERENCE_SPEEDUP,
        )
    )
    for length in LENGTHS:
        print(
            target_line(
                f"numba scan vs chunked PyTorch at L={length} (speedup)", vs_torch[length].median, ">", 1.0
            )
        )


def scan_gpu(repeats: int) -> None:
    """cuda vs torch (chunked) on the GPU, when there is one (no target)."""
    if not torch.cuda.is_available():
        print("\nSSD scan on GPU: skipped (no CUDA GPU)")
        return
    if not numba_cuda.available():
        print("\nSSD scan on GPU: skipped (numba.cuda cannot run here: pip install numba-cuda)")
        return
    print(f"\nSSD scan on GPU ({torch.cuda.get_device_name()}): same inputs; median (min-max) ms")
    header = f"{'L':>6} {'torch ms':>20} {'cuda ms':>20} {'torch/cuda':>18} {'max|diff|':>10}"
    print(header)
    print("-" * len(header))
    for length in LENGTHS:
        timings, diff = timed(length, ("torch", "cuda"), repeats, device="cuda")
        torch_ms, cuda_ms = (timings[b].spread_ms.format() for b in ("torch", "cuda"))
        speedup = ratio(timings["torch"], timings["cuda"]).format()
        print(f"{length:>6} {torch_ms:>20} {cuda_ms:>20} {speedup:>18} {diff:10.1e}")


def hybrid_decode(repeats: int, n_new: int = 32) -> None:
    """A 1:5 hybrid against pure attention of the same width and depth (the hybrid reproduction's sizes):
    decode cache at 8K tokens and decode tokens/s at 4K tokens of context, with the target lines."""
    base = hybrid.settings().lm_model
    patterns = {name: hybrid.variants(12)[name] for name in ("attention", "inter 1:5")}
    torch.manual_seed(0)
    long_context = replace(base, max_seq_len=8192 + n_new)
    models = {name: HybridLM(long_context.with_pattern(p)) for name, p in patterns.items()}
    print(
        f"\nDecoding, 12 blocks of width {base.d_model}: attention {patterns['attention']} vs 1:5 hybrid "
        f"{patterns['inter 1:5']}; {n_new} new tokens, median (min-max) of {repeats} interleaved repeats"
    )
    cache = {name: cache_megabytes(model, 8192) for name, model in models.items()}
    print(f"cache at 8192 tokens: attention {cache['attention']:.2f} MiB, "
          f"1:5 hybrid {cache['inter 1:5']:.2f} MiB")
    timings = decode_timings(models, 4096, n_new, repeats)
    for name, timing in timings.items():
        print(
            f"decode at 4096 tokens of context, {name}: {n_new / timing.median:.0f} tokens/s "
            f"({timing.spread_ms.format('.0f')} ms for {n_new} tokens)"
        )
    speedup = ratio(timings["attention"], timings["inter 1:5"])
    print(f"1:5 hybrid / attention decode tokens/s at 4096: {speedup.format()}")
    print(
        target_line(
            "1:5 hybrid / attention decode cache at 8K tokens",
            cache["inter 1:5"] / cache["attention"],
            "<=",
            0.25,
        )
    )
    print(target_line("1:5 hybrid / attention decode tokens/s at 4K tokens", speedup.median, ">", 1.0))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per backend and length")
    parser.add_argument(
        "--threads",
        type=int,
        default=numba.config.NUMBA_NUM_THREADS,
        help="threads for both numba and torch (default: numba's default)",
    )
    args = parser.parse_args()
    numba.set_num_threads(args.threads)
    torch.set_num_threads(args.threads)

    # The sections, in order; a new section is one more call here.
    scan_cpu(args.repeats)
    scan_gpu(args.repeats)
    hybrid_decode(args.repeats)


if __name__ == "__main__":
    main()
