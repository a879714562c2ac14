"""The one way minihybrid times things: warm-up, interleaved repeats, median and spread, device sync.

Benchmarks, notebooks and reproductions all call `compare`, so a plot, a report row and a benchmark line
print the same number. On a shared, noisy machine the candidates are run in turn inside each repeat
(A B C, A B C, ...), so a slow moment hits them alike; ratios are taken per repeat, then summarised.

    timings = compare({"torch": f, "numba": g}, repeats=7)
    timings["numba"].median                       # seconds
    ratio(timings["numba"], timings["torch"])     # Spread of per-repeat time ratios numba / torch
    target_line("numba/sdpa at n=2048", 1.4, "<=", 2.0)   # 'target ...: 1.40 <= 2 -> met'
"""

from __future__ import annotations

import operator
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

_OPS = {"<=": operator.le, ">=": operator.ge, "<": operator.lt, ">": operator.gt}


def synchronize(device: str | torch.device | None = None) -> None:
    """Wait for queued GPU work (a no-op on CPU), so a clock read after it measures finished work."""
    if torch.cuda.is_available() and (device is None or torch.device(device).type == "cuda"):
        torch.cuda.synchronize(device)


def clock(device: str | torch.device | None = None) -> float:
    """perf_counter() seconds after the device has finished its queued work."""
    synchronize(device)
    return time.perf_counter()


@dataclass(frozen=True)
class Spread:
    """A median with the smallest and largest value it summarises."""

    median: float
    low: float
    high: float

    @classmethod
    def of(cls, values: list[float]) -> Spread:
        if not values:
            raise ValueError("no values to summarise")
        return cls(statistics.median(values), min(values), max(values))

    def format(self, spec: str = ".2f") -> str:
        """'1.23 (1.10-1.31)'."""
        return f"{self.median:{spec}} ({self.low:{spec}}-{self.high:{spec}})"


@dataclass(frozen=True)
class Timing:
    """Seconds per call of one candidate, one value per repeat."""

    seconds: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def spread_ms(self) -> Spread:
        """Median, fastest and slowest repeat in milliseconds."""
        return Spread.of([1e3 * s for s in self.seconds])

    @property
    def median_ms(self) -> float:
        return 1e3 * self.median


def compare(candidates: dict[str, Callable[[], object]], repeats: int = 5, warmup: int = 1,
            device: str | torch.device | None = None) -> dict[str, Timing]:
    """Time each zero-argument callable `repeats` times, interleaved, after `warmup` untimed calls each.

    Warm-up absorbs compilation (Numba) and first-call allocation. Each call is bracketed by `clock(device)`
    so asynchronous GPU work is counted.
    """
    if not candidates:
        raise ValueError("compare needs at least one candidate")
    if repeats < 1 or warmup < 0:
        raise ValueError(f"repeats must be >= 1 and warmup >= 0, got repeats={repeats}, warmup={warmup}")
    for fn in candidates.values():
        for _ in range(warmup):
            fn()
    seconds: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(repeats):
        for name, fn in candidates.items():
            start = clock(device)
            fn()
            seconds[name].append(clock(device) - start)
    return {name: Timing(tuple(values)) for name, values in seconds.items()}


def ratio(numerator: Timing, denominator: Timing) -> Spread:
    """Per-repeat time ratios numerator / denominator (repeats of one `compare` call ran side by side).

    The median is the median of the per-repeat ratios; low and high are their extremes.
    """
    if len(numerator.seconds) != len(denominator.seconds):
        raise ValueError("ratio needs two timings from the same compare() call (equal repeat counts)")
    return Spread.of([a / b for a, b in zip(numerator.seconds, denominator.seconds)])


def target_line(what: str, measured: float, op: str, goal: float) -> str:
    """The closing line of a benchmark: 'target <what>: <measured> <op> <goal> -> met' (or '-> not met')."""
    if op not in _OPS:
        raise ValueError(f"op must be one of {list(_OPS)}, got {op!r}")
    verdict = "met" if _OPS[op](measured, goal) else "not met"
    return f"target {what}: {measured:.2f} {op} {goal:g} -> {verdict}"
