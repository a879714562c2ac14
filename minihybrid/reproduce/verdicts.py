"""Verdicts over seeds, shared by the reproductions' claims tables.

"X beats Y" compares means over seeds: "holds" when the gap is beyond twice its standard error, "partly"
when it points the paper's way but within that noise (or with one seed), else "does not hold".
"""

from __future__ import annotations

import statistics


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def fmt_mean_std(values: list[float]) -> str:
    mean, std = mean_std(values)
    return f"{mean:.3f} ± {std:.3f}" if len(values) > 1 else f"{mean:.3f}"


def better(low: list[float], high: list[float]) -> tuple[str, float]:
    """(verdict that `low` is below `high`, the gap mean(high) - mean(low)); see the module docstring."""
    (m_low, s_low), (m_high, s_high) = mean_std(low), mean_std(high)
    gap = m_high - m_low
    error = (s_low**2 / len(low) + s_high**2 / len(high)) ** 0.5
    if gap > 2 * error > 0:
        return "holds", gap
    return ("partly" if gap > 0 else "does not hold"), gap
