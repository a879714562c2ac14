"""minihybrid.timing: interleaved repeats, spreads, per-repeat ratios, target lines."""

import pytest

from minihybrid.timing import Spread, Timing, compare, ratio, target_line


def test_compare_interleaves_after_warmup():
    order = []
    timings = compare({"a": lambda: order.append("a"), "b": lambda: order.append("b")}, repeats=3, warmup=2)
    assert order == ["a", "a", "b", "b"] + ["a", "b"] * 3
    assert all(len(t.seconds) == 3 and t.median >= 0 for t in timings.values())


def test_ratio_is_per_repeat():
    spread = ratio(Timing((2.0, 4.0, 9.0)), Timing((1.0, 1.0, 3.0)))
    assert spread == Spread(3.0, 2.0, 4.0) and spread.format() == "3.00 (2.00-4.00)"
    with pytest.raises(ValueError, match="same compare"):
        ratio(Timing((1.0,)), Timing((1.0, 2.0)))


def test_target_lines():
    line = target_line("numba/sdpa at n=2048", 1.404, "<=", 2.0)
    assert line == "target numba/sdpa at n=2048: 1.40 <= 2 -> met"
    assert target_line("speed-up", 0.9, ">=", 1.0).endswith("-> not met")
    with pytest.raises(ValueError, match="op must be one of"):
        target_line("x", 1.0, "=", 1.0)


@pytest.mark.parametrize("kwargs,match", [({"candidates": {}}, "at least one"),
                                          ({"candidates": {"a": int}, "repeats": 0}, "repeats must be >= 1")])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        compare(**kwargs)
