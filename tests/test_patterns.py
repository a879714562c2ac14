"""Ratio patterns and the placement table (minihybrid/patterns.py), and ModelConfig reading them."""

import pytest

from minihybrid import ModelConfig
from minihybrid.patterns import PLACEMENTS, expand_ratio, placement_positions


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
