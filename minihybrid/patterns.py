"""Where the attention blocks of a hybrid go: ratio patterns and one table of named placements.

A ratio pattern "a:b" makes n_layers * a / (a + b) of the blocks attention ("A") and the rest another mixer
(`ModelConfig.other`, e.g. "M" for the SSM); "a:b@placement" says where the attention blocks sit, from
PLACEMENTS (the default is "spread"). For 2 attention blocks among 12:

    spread    evenly through the middle, each centred in its share      ...A.....A..   (3, 9)
    every     evenly from the first block on: every (n / count)-th       A.....A.....   (0, 6)
    front     the first blocks                                           AA..........
    back      the last blocks                                            ..........AA
    sandwich  both ends, the odd one out at the front                   A..........A
    center    one contiguous run in the middle                           .....AA.....

Modules 01 and 02 both build their layouts from this table (module 02 asks for counts directly:
`placement_positions("back", 8, 1)` is "standard attention in the last layer only").
"""

from __future__ import annotations

from collections.abc import Callable

from minihybrid.checks import check_int


def _spread(n_layers: int, count: int) -> list[int]:
    return [(2 * i + 1) * n_layers // (2 * count) for i in range(count)]  # the centre of each share, exactly


PLACEMENTS: dict[str, Callable[[int, int], list[int]]] = {
    "spread": _spread,
    "every": lambda n, count: [n * i // count for i in range(count)],
    "front": lambda n, count: list(range(count)),
    "back": lambda n, count: list(range(n - count, n)),
    "sandwich": lambda n, count: [*range((count + 1) // 2), *range(n - count // 2, n)],
    "center": lambda n, count: list(range((n - count) // 2, (n - count) // 2 + count)),
}


def placement_positions(placement: str, n_layers: int, count: int) -> list[int]:
    """Sorted indices of `count` blocks among `n_layers`, placed as PLACEMENTS[placement] says."""
    if placement not in PLACEMENTS:
        raise ValueError(f"unknown placement {placement!r}; choose one of {', '.join(PLACEMENTS)}")
    check_int("n_layers", n_layers)
    check_int("count", count, minimum=0)
    if count > n_layers:
        raise ValueError(f"cannot place {count} blocks among n_layers={n_layers}")
    return PLACEMENTS[placement](n_layers, count) if count else []


def expand_ratio(pattern: str, n_layers: int | None = None, other: str = "S", attention: str = "A") -> str:
    """'a:b' or 'a:b@placement' -> one letter per block, e.g. expand_ratio('1:5', 12, 'M') == 'MMMAMMMMMAMM'.

    n_layers defaults to a + b and must be a multiple of it (so the ratio holds exactly).
    Exercise twin: ex01.expand_pattern.
    """
    ratio, _, placement = pattern.partition("@")
    try:
        a, b = (int(part) for part in ratio.split(":"))
    except ValueError:
        raise ValueError(f"ratio pattern {pattern!r} must look like '1:5' or '1:5@front' "
                         "(attention:other[@placement])") from None
    if a < 0 or b < 0 or a + b == 0:
        raise ValueError(f"ratio pattern {pattern!r} needs non-negative parts, not both zero")
    n_layers = a + b if n_layers is None else n_layers
    check_int("n_layers", n_layers)
    if n_layers % (a + b):
        raise ValueError(f"ratio {ratio} cannot fill n_layers={n_layers}: "
                         f"n_layers must be a multiple of {a + b}")
    letters = [other] * n_layers
    for i in placement_positions(placement or "spread", n_layers, n_layers * a // (a + b)):
        letters[i] = attention
    return "".join(letters)
