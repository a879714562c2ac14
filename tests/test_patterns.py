"""Ratio patterns, the placement table and module 02's configurations (minihybrid/patterns.py), and
ModelConfig reading them."""

import pytest

from minihybrid import ModelConfig
from minihybrid.patterns import (
    PLACEMENTS,
    VARIANTS,
    configuration_pattern,
    expand_ratio,
    placement_positions,
    variant_letter,
)


@pytest.mark.parametrize("pattern,n_layers,expected", [
    ("1:1", 4, "MAMA"),
    ("1:3", 8, "MMAMMMAM"),
    ("1:5", 12, "MMMAMMMMMAMM"),
    ("1:12", 13, "MMMMMMAMMMMMM"),
    ("1:5@front", 12, "AAMMMMMMMMMM"),
    ("1:5@back", 12, "MMMMMMMMMMAA"),
    ("1:5@sandwich", 12, "AMMMMMMMMMMA"),
    ("1:5@center", 12, "MMMMMAAMMMMM"),
    ("1:3@every", 12, "AMMMAMMMAMMM"),
    ("0:1", 3, "MMM"),
    ("1:0", 2, "AA"),
])
def test_expand_ratio(pattern, n_layers, expected):
    assert expand_ratio(pattern, n_layers, "M") == expected


def test_attention_is_spread_through_the_middle_never_at_the_ends():
    for a, b in ((1, 3), (1, 5), (1, 12)):
        for multiple in (1, 2, 3):
            letters = expand_ratio(f"{a}:{b}", multiple * (a + b), "M")
            assert letters.count("A") == multiple * a
            assert letters[0] == letters[-1] == "M"


@pytest.mark.parametrize("placement", list(PLACEMENTS))
@pytest.mark.parametrize("n_layers,count", [(1, 1), (7, 0), (7, 3), (8, 8), (13, 2)])
def test_every_placement_gives_count_distinct_positions(placement, n_layers, count):
    positions = placement_positions(placement, n_layers, count)
    assert positions == sorted(set(positions)) and len(positions) == count
    assert all(0 <= p < n_layers for p in positions)


def test_model_config_reads_placements_with_another_mixer_letter():
    config = ModelConfig(pattern="1:5@sandwich", n_layers=12, other="M")
    assert config.pattern_string == "AMMMMMMMMMMA"


@pytest.mark.parametrize("call,match", [
    (lambda: expand_ratio("1:5@top", 12), "unknown placement 'top'; choose one of spread, every"),
    (lambda: expand_ratio("1:5", 8), "ratio 1:5 cannot fill n_layers=8"),
    (lambda: expand_ratio("one:five", 6), "must look like '1:5' or '1:5@front'"),
    (lambda: expand_ratio("0:0", 6), "not both zero"),
    (lambda: placement_positions("front", 4, 5), "cannot place 5 blocks among n_layers=4"),
    (lambda: placement_positions("front", 0, 0), "n_layers must be an int >= 1"),
])
def test_bad_patterns_are_refused(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def one_indexed(pattern: str, letter: str = "A") -> set[int]:
    return {i + 1 for i, c in enumerate(pattern) if c == letter}


@pytest.mark.parametrize("configuration,standard_layers", [  # Deconstructing Attention, Table 11 (24 layers)
    ("hybrid", set(range(2, 25, 2))),
    ("top", set(range(1, 13))),
    ("middle", {*range(1, 7), *range(19, 25)}),
    ("bottom", set(range(13, 25))),
    ("every 4th", set(range(4, 25, 4))),
    ("first", {1}),
    ("last", {24}),
    ("both ends", {1, 24}),
    ("uniform", set()),
    ("standard", set(range(1, 25))),
])
def test_configurations_keep_attention_where_the_paper_does(configuration, standard_layers):
    pattern = configuration_pattern(configuration, "N", 24)
    assert len(pattern) == 24 and set(pattern) <= {"A", "N"}
    assert one_indexed(pattern) == standard_layers


def test_configurations_at_8_layers():
    assert configuration_pattern("hybrid", "F", 8) == "FAFAFAFA"
    assert configuration_pattern("every 4th", "F", 8) == "FFFAFFFA"
    assert configuration_pattern("middle", "F", 8) == "AAFFFFAA"
    assert configuration_pattern("skip", "F", 8) == "AAAA"
    assert configuration_pattern([0, 5], "F", 8) == "AFFFFAFF"
    assert [variant_letter(name) for name in VARIANTS] == list(VARIANTS.values())


@pytest.mark.parametrize("call,match", [
    (lambda: configuration_pattern("sideways", "N", 8), "unknown configuration 'sideways'; choose one"),
    (lambda: configuration_pattern([0, 8], "N", 8), r"blocks \[8\] are outside the model's blocks 0..7"),
    (lambda: configuration_pattern("every 4th", "N", 6), "'every 4th' needs n_layers to be a multiple of 4"),
    (lambda: configuration_pattern("skip", "N", 1), "would remove every layer"),
    (lambda: configuration_pattern("both ends", "N", 1), "cannot place 2 blocks among n_layers=1"),
    (lambda: variant_letter("Linear"), "unknown variant 'Linear'; choose one of standard, MLP, Approximate"),
])
def test_bad_configurations_are_refused(call, match):
    with pytest.raises(ValueError, match=match):
        call()
