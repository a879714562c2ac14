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

Modules 01 and 02 both build their layouts from this table. Module 02 names whole configurations
(CONFIGURATIONS, after Deconstructing Attention's Table 11): which blocks keep standard attention while the
studied variant fills the rest, e.g. configuration_pattern("hybrid", "N", 8) == "NANANANA".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from fractions import Fraction

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


# module 02's variants of attention, by the principle each relaxes -> mixer letter (minihybrid.layers)
VARIANTS = {
    "standard": "A",  # softmax attention
    "MLP": "F",  # no token mixing
    "Approximate": "T",  # softmax replaced by its second-order Taylor expansion (linear time)
    "Non-approximate": "N",  # no pairwise query-key similarity: a softmax over time of same-token scores
    "RndEmbQK": "R",  # Q, K from fixed random embeddings (no dependence on the sequence)
    "FixedSeqQK": "P",  # Q, K from one fixed passage (no dependence on the sequence)
    "StaticEmbQK": "E",  # Q, K from the static input embeddings (no dependence on the current layer)
}


def variant_letter(name: str) -> str:
    """The mixer letter of a named variant of attention (VARIANTS)."""
    if name not in VARIANTS:
        raise ValueError(f"unknown variant {name!r}; choose one of {', '.join(VARIANTS)}")
    return VARIANTS[name]


# name -> (placement of the blocks that keep standard attention, how many: a Fraction of n_layers (which must
# then hold it exactly) or a fixed int, mirrored); mirrored counts from the last block, as the paper does for
# "every k-th" (its last layer keeps attention)
CONFIGURATIONS: dict[str, tuple[str, Fraction | int, bool]] = {
    "uniform": ("front", Fraction(0), False),  # the variant everywhere
    "standard": ("front", Fraction(1), False),  # standard attention everywhere
    "hybrid": ("every", Fraction(1, 2), True),  # the variant in odd layers (1-indexed), attention in even
    "top": ("front", Fraction(1, 2), False),  # the variant in the top half
    "middle": ("sandwich", Fraction(1, 2), False),  # the variant in the middle half
    "bottom": ("back", Fraction(1, 2), False),  # the variant in the bottom half
    "every 4th": ("every", Fraction(1, 4), True),  # attention in every 4th layer, the last included
    "first": ("front", 1, False),  # attention in the first layer only
    "last": ("back", 1, False),  # attention in the last layer only
    "both ends": ("sandwich", 2, False),  # attention in the first and the last layer
}


def standard_positions(configuration: str | Sequence[int], n_layers: int) -> list[int]:
    """Block indices that keep standard attention under a named configuration (or an explicit index list)."""
    check_int("n_layers", n_layers)
    if not isinstance(configuration, str):
        positions = sorted(set(configuration))
        outside = [i for i in positions if not (isinstance(i, int) and 0 <= i < n_layers)]
        if outside:
            raise ValueError(f"standard-attention blocks {outside} are outside the model's blocks "
                             f"0..{n_layers - 1}")
        return positions
    name = "hybrid" if configuration == "skip" else configuration
    if name not in CONFIGURATIONS:
        raise ValueError(f"unknown configuration {configuration!r}; choose one of "
                         f"{', '.join([*CONFIGURATIONS, 'skip'])} or a list of block indices")
    if configuration == "skip" and n_layers < 2:
        raise ValueError("configuration 'skip' would remove every layer of a 1-layer model")
    placement, count, mirrored = CONFIGURATIONS[name]
    if isinstance(count, Fraction):
        if n_layers % count.denominator:
            raise ValueError(f"configuration {configuration!r} needs n_layers to be a multiple of "
                             f"{count.denominator}, got {n_layers}")
        count = int(n_layers * count)
    positions = placement_positions(placement, n_layers, count)
    return sorted(n_layers - 1 - i for i in positions) if mirrored else positions


def configuration_pattern(configuration: str | Sequence[int], variant: str, n_layers: int,
                          standard: str = "A") -> str:
    """One letter per block: `standard` where the configuration keeps standard attention, `variant` elsewhere.

    "skip" removes the variant's blocks altogether (the hybrid's odd layers), so its pattern is shorter:
    configuration_pattern("skip", "N", 8) == "AAAA". An explicit list of block indices (0-based) names the
    blocks that keep standard attention.
    Exercise twin: ex02.build_configuration.
    """
    keep = standard_positions(configuration, n_layers)
    if configuration == "skip":
        return standard * len(keep)
    return "".join(standard if i in keep else variant for i in range(n_layers))
