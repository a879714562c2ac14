"""Argument checks shared by every public entry point: one message format, the argument always named."""

from __future__ import annotations

import math
import numbers


def check_int(name: str, value, minimum: int = 1, optional: bool = False) -> None:
    """`value` must be an int >= minimum (bool refused), or None when optional; ValueError names `name`."""
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        allowed = f"an int >= {minimum}" + (" or None" if optional else "")
        raise ValueError(f"{name} must be {allowed}, got {value!r}")


def check_number(name: str, value, minimum: float = 0.0, inclusive: bool = True) -> None:
    """`value` must be a real number >= minimum (> minimum when not inclusive); bool and NaN refused."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and not math.isnan(value)
    if not ok or value < minimum or (not inclusive and value == minimum):
        raise ValueError(f"{name} must be a number {'>=' if inclusive else '>'} {minimum:g}, got {value!r}")
