"""Benchmark: InfLLM-V2 block-sparse attention (selection + Numba kernel) vs dense SDPA, one SmolLM2 layer.

One attention layer of SmolLM2-135M's shape (9 query heads, 3 kv heads, D=64), float32, causal, batch 1
(kernels/block_sparse/speed.py). First each preset's sparse output is validated against the reference, then
prefill and single-token decode are timed with `minihybrid.timing.compare` (warm-up, interleaved repeats) at
each length and reported as median (min-max) ms, the speed-up over dense, and the bound
(n/2) / (|I| B + n/stride) of the preset. The crossover is the shortest length where sparse prefill wins;
the small preset's dense_len should sit there. With a CUDA GPU, the numba.cuda kernel is checked and timed
against the Numba-free dense path there too.

    python benchmarks/bench_block_sparse.py                       # 1K .. 64K, about 10 minutes on 2 cores
    python benchmarks/bench_block_sparse.py --lengths 4096 32768 --repeats 5
"""

from __future__ import annotations

import argparse

import torch

from minihybrid.kernels.block_sparse import block_sparse_attention, block_sparse_reference
from minihybrid.kernels.block_sparse.select import blocks_per_query, sparse_blocks
from minihybrid.kernels.block_sparse.speed import (
    bound,
    layer_inputs,
    selection_sizes,
    time_decode,
    time_prefill,
)
from minihybrid.layers.switchable import PRESETS
from minihybrid.timing import ratio, target_line

LENGTHS = (1024, 2048, 4096, 6144, 8192, 16384, 32768, 65536)
TARGET_PREFILL, TARGET_DECODE, TARGET_BOUND_SHARE = 3.0, 4.0, 0.5


def validate(n: int = 2047) -> None:
    q, k, v = layer_inputs(n)
    for name, preset in PRESETS.items():
        sizes = selection_sizes(preset)
        blocks = sparse_blocks(q, k, **sizes)
        got = block_sparse_attention(q, k, v, blocks, block_size=sizes["block_size"], backend="numba")
        diff = (got - block_sparse_reference(q, k, v, blocks, sizes["block_size"])).abs().max().item()
        if diff > 1e-4:
            raise SystemExit(f"preset {name}: Numba kernel and reference disagree at n={n}: {diff:.1e}")
        print(f"validated preset {name!r} at n={n}: max |numba - reference| = {diff:.1e}")


def describe_presets() -> None:
    for name, p in PRESETS.items():
        print(f"preset {name!r}: kernel {p['kernel_size']}, stride {p['stride']}, block {p['block_size']}, "
              f"init {p['init_blocks']}, window {p['window']}, top-k {p['topk']} extra, "
              f"dense_len {p['dense_len']} -> |I| = {blocks_per_query(**p)} blocks")


def table(title: str, lengths, timings_of, speedups: dict) -> None:
    names = ("dense", *PRESETS)
    print(f"\n{title}: median (min-max) ms; speed-up over dense, per-repeat median, [bound]")
    header = f"{'n':>6} " + " ".join(f"{name + ' ms':>22}" for name in names) + " " + " ".join(
        f"{name + ' x [bound]':>22}" for name in PRESETS)
    print(header)
    print("-" * len(header))
    for n in lengths:
        timings = timings_of(n)
        speedups[n] = {name: ratio(timings["dense"], timings[name]).median for name in PRESETS}
        cells = " ".join(f"{timings[name].spread_ms.format('.1f'):>22}" for name in names)
        gains = " ".join(f"{f'{speedups[n][name]:.2f} [{bound(n, preset):.2f}]':>22}"
                         for name, preset in PRESETS.items())
        print(f"{n:>6} {cells} {gains}", flush=True)


def gpu(lengths, repeats: int) -> None:
    if not torch.cuda.is_available():
        print("\nCUDA kernel on a GPU: skipped (no CUDA GPU; the simulator tests cover its correctness)")
        return
    print(f"\nCUDA kernel on {torch.cuda.get_device_name()}: prefill, small preset (selection + kernel)")
    for n in lengths:
        t = time_prefill(n, {"small": PRESETS["small"]}, repeats, device="cuda")
        print(f"{n:>6} dense {t['dense'].spread_ms.format()} ms  sparse {t['small'].spread_ms.format()} ms  "
              f"dense/sparse {ratio(t['dense'], t['small']).format()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", type=int, nargs="+", default=list(LENGTHS))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"one SmolLM2 attention layer, float32, batch 1; torch threads {torch.get_num_threads()}")
    describe_presets()
    validate()
    prefill, decode = {}, {}
    table("Prefill (causal, n queries)", args.lengths, lambda n: time_prefill(n, PRESETS, args.repeats),
          prefill)
    table("Decode (8 steps of one query after n keys)", args.lengths,
          lambda n: time_decode(n, PRESETS, max(args.repeats, 5)), decode)
    gpu(args.lengths, args.repeats)

    wins = [n for n in args.lengths if prefill[n]["small"] > 1.0]
    print(f"\ncrossover (small preset prefill): {'sparse wins from ' + str(min(wins)) if wins else 'none'} "
          f"tokens; dense_len of the small preset: {PRESETS['small']['dense_len']}")
    for n in (32768, 65536):
        if n in prefill:
            share = prefill[n]["small"] / bound(n, PRESETS["small"])
            print(target_line(f"small preset prefill at {n // 1024}K, share of the bound", share, ">=",
                              TARGET_BOUND_SHARE))
    if 32768 in prefill:
        print(target_line("small preset prefill vs SDPA at 32K (speedup)", prefill[32768]["small"], ">=",
                          TARGET_PREFILL))
        print(target_line("small preset decode vs dense at 32K (speedup)", decode[32768]["small"], ">=",
                          TARGET_DECODE))


if __name__ == "__main__":
    main()
