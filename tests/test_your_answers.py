"""minihybrid.your_answers: an exercise function beside its library twin, one verdict line each."""

import torch

from minihybrid.your_answers import compare_to_library, max_difference


def stub():
    raise NotImplementedError("ex09: implement nothing")


def test_verdicts_for_right_wrong_stub_and_raising_answers(capsys):
    x = torch.tensor([1.0, float("-inf")])
    verdicts = compare_to_library({
        "right": (lambda: (x, "AB"), lambda: (x.clone(), "AB")),
        "wrong": (lambda: x + 1, lambda: x),
        "stub": (stub, lambda: x),
        "raises": (lambda: x[5], lambda: x),
    })
    assert verdicts["right"] == "max |difference| = 0.0e+00 -> matches the library"
    assert verdicts["wrong"].endswith("DIFFERS from the library")
    assert verdicts["stub"] == "not yet (ex09: implement nothing)"
    assert verdicts["raises"].startswith("raised IndexError")
    assert len(capsys.readouterr().out.splitlines()) == 4


def test_structure_and_shape_mismatches_are_infinitely_far():
    assert max_difference(torch.zeros(2), torch.zeros(3)) == float("inf")
    assert max_difference([torch.zeros(2)], (torch.zeros(2), torch.zeros(2))) == float("inf")
    assert max_difference("ANA", "NAN") == float("inf")
