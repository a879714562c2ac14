"""Speed of the quantized matmul on the CPU against a float32 torch matmul, measured the one way
(`minihybrid.timing`).

Decode multiplies one row (or the k rows of a speculative verify step) by each weight: little arithmetic per
weight byte, so the time is mostly reading the weights, and a 4-bit weight is 8x fewer bytes than float32.
``copy_bandwidth`` gives the machine's ceiling, ``time_gemv`` the achieved bytes/s per SmolLM2 shape.

torch and Numba each run their own OpenMP pool (two libgomp copies) whose threads spin after a parallel
region; on 2 cores, interleaving the two can stall a call for milliseconds. OMP_WAIT_POLICY=PASSIVE (set
before torch is imported) avoids that at the cost of a thread wake-up per call.
"""

from __future__ import annotations

import math
import statistics
import time

import torch

from minihybrid.kernels.quant_matmul.cpu import quant_matmul_cpu
from minihybrid.kernels.quant_matmul.reference import pack_codes
from minihybrid.timing import compare, ratio

# (K inputs, N outputs) of SmolLM2-135M's matmuls: q/o projections, k/v, MLP up/gate, MLP down, LM head
SMOLLM2_SHAPES = ((576, 576), (576, 192), (576, 1536), (1536, 576), (576, 49152))
MIN_SAMPLE_S = 2e-3  # calls are repeated inside a timed sample until it lasts about this long


def copy_bandwidth(megabytes: int = 256, repeats: int = 5) -> float:
    """GB/s of a large float32 tensor copy (bytes read + bytes written), median of ``repeats``."""
    src = torch.ones(megabytes * 2**18)
    dst = torch.empty_like(src)
    dst.copy_(src)  # touch the pages first
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        dst.copy_(src)
        seconds.append(time.perf_counter() - start)
    return 2 * src.numel() * 4 / statistics.median(seconds) / 1e9


def quantized_weight(k: int, n: int, bits: int, group_size: int, seed: int = 0):
    """Random packed codes (N, K * bits / 8) uint8 and scales, mins (N, K // group_size) float32."""
    g = torch.Generator().manual_seed(seed)
    codes = torch.randint(0, 2**bits, (n, k), generator=g)
    scales = torch.rand(n, k // group_size, generator=g) / 2**bits
    return pack_codes(codes, bits), scales, -scales * 2 ** (bits - 1)


def _repeated(fn, calls: int):
    def run():
        for _ in range(calls):
            fn()
    return run


def _time_shape(k: int, n: int, bits: int, group_size: int, rows: int, repeats: int) -> dict:
    packed, scales, mins = quantized_weight(k, n, bits, group_size)
    w = torch.randn(n, k)
    x = torch.randn(rows, k)
    out = torch.empty(rows, n)
    fns = {"fp32": lambda: x @ w.T,
           "quant": lambda: quant_matmul_cpu(x, packed, scales, mins, out, bits, group_size)}
    fns["quant"]()  # compile before calibrating
    start = time.perf_counter()
    fns["fp32"]()
    calls = max(1, int(MIN_SAMPLE_S / max(time.perf_counter() - start, 1e-7)))
    timings = compare({name: _repeated(fn, calls) for name, fn in fns.items()}, repeats=repeats)
    quant_s = timings["quant"].median / calls
    moved = sum(t.numel() * t.element_size() for t in (packed, scales, mins, x, out))
    return {"shape": (k, n), "group_size": group_size, "fp32_ms": 1e3 * timings["fp32"].median / calls,
            "quant_ms": 1e3 * quant_s, "ratio": ratio(timings["fp32"], timings["quant"]),
            "quant_gbps": moved / quant_s / 1e9}


@torch.no_grad()
def time_gemv(shapes=SMOLLM2_SHAPES, bits: int = 4, group_size: int = 128, rows: int = 1,
              repeats: int = 7) -> list[dict]:
    """Per (K, N) shape: {"shape", "group_size", "fp32_ms", "quant_ms", "ratio" (fp32 time / quantized
    time: the speed-up, a timing.Spread), "quant_gbps"} for x (rows, K) @ W^T, torch float32 ``x @ W.T`` vs
    the Numba kernel (``quant_matmul_cpu``, no checks), interleaved. A group_size >= K means per-channel (K);
    a smaller one that does not divide K becomes the largest divisor of both (g128 on K = 576 is g64).
    quant_gbps counts packed + scales + mins + x + y bytes per second.
    """
    return [_time_shape(k, n, bits, k if group_size >= k else math.gcd(k, group_size), rows, repeats)
            for k, n in shapes]
