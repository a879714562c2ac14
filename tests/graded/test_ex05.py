"""Graded tests for exercise set 05: group-wise quantization, int4 packing and dequantization, Wanda's score
and the 2:4 mask, and one GPTQ block.

Each test compares your answer with an independent computation (loops over rows, groups and columns written
out here, in float64) or with a small case worked out by hand, on awkward shapes: odd row counts, one group
or many, all-zero groups, all-positive groups, ties. Run them with

    pytest tests/graded/test_ex05.py          (MINIHYBRID_IMPL=solutions to run the reference answers)
"""

import adapters
import pytest
import torch


def graded(points: int) -> pytest.MarkDecorator:
    return pytest.mark.graded(exercise="ex05", points=points)


@pytest.fixture
def ex05():
    """The ex05 functions under test (yours, or what MINIHYBRID_IMPL selects), through tests/adapters.py."""
    return adapters.load("ex05")


def randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def group_grid(values: list[float], bits: int, symmetric: bool) -> tuple[float, float]:
    """(scale, offset) of one group, from the rules in the docstring, one number at a time."""
    top = 2**bits - 1
    if symmetric:
        s = 2 * max(abs(v) for v in values) / top
        s = s if s > 0 else 1.0
        return s, -(2 ** (bits - 1)) * s
    lo, hi = min(min(values), 0.0), max(max(values), 0.0)
    s = (hi - lo) / top
    s = s if s > 0 else 1.0
    return s, -round(-lo / s) * s


def quantize_loops(w: torch.Tensor, bits: int, group_size: int, symmetric: bool):
    """(codes, scales, mins, edge): edge marks values on a rounding edge (x.5), where float32 may go either
    way (the symmetric grid puts every group's most negative extreme exactly there)."""
    n, k = w.shape
    edge = torch.zeros(n, k, dtype=torch.bool)
    codes = torch.zeros(n, k, dtype=torch.long)
    scales, mins = torch.zeros(n, k // group_size), torch.zeros(n, k // group_size)
    for row in range(n):
        for g in range(k // group_size):
            values = w[row, g * group_size:(g + 1) * group_size].tolist()
            s, m = group_grid(values, bits, symmetric)
            scales[row, g], mins[row, g] = s, m
            for i, v in enumerate(values):
                codes[row, g * group_size + i] = min(max(round((v - m) / s), 0), 2**bits - 1)
                edge[row, g * group_size + i] = abs((v - m) / s % 1 - 0.5) < 1e-4
    return codes, scales, mins, edge


@graded(1)
def test_quantize_groups_worked_example(ex05):
    codes, scales, mins = ex05.quantize_groups(torch.tensor([[0.0, 2.0, -1.0, 0.5]]), 4, 4, True)
    assert codes.dtype == torch.uint8
    assert codes.tolist() == [[8, 15, 4, 10]]
    torch.testing.assert_close(scales, torch.tensor([[4 / 15]]))
    torch.testing.assert_close(mins, torch.tensor([[-32 / 15]]))


@graded(2)
@pytest.mark.parametrize("bits, group_size, symmetric", [(4, 8, True), (4, 8, False), (4, 24, False),
                                                         (8, 16, True), (8, 48, False)])
def test_quantize_groups_matches_loops(ex05, bits, group_size, symmetric):
    w = randn(5, 48, seed=bits + group_size) * torch.linspace(0.1, 4, 48)
    w[1] = w[1].abs() + 0.5  # an all-positive row: the asymmetric range must still include 0
    codes, scales, mins = ex05.quantize_groups(w, bits, group_size, symmetric)
    want_codes, want_scales, want_mins, edge = quantize_loops(w, bits, group_size, symmetric)
    torch.testing.assert_close(scales, want_scales)
    torch.testing.assert_close(mins, want_mins)
    assert torch.equal(codes.long()[~edge], want_codes[~edge])
    assert ((codes.long() - want_codes)[edge].abs() <= 1).all()


@graded(1)
def test_quantize_groups_zero_group_and_range(ex05):
    w = torch.zeros(2, 16)
    w[1, 8:] = torch.arange(1.0, 9.0)
    for symmetric in (True, False):
        codes, scales, mins = ex05.quantize_groups(w, 4, 8, symmetric)
        assert torch.isfinite(scales).all() and scales[0].eq(1).all() and scales[1, 0] == 1
        values = codes.float().reshape(2, 2, 8) * scales[..., None] + mins[..., None]
        assert values[0].eq(0).all() and values[1, 0].eq(0).all()  # zeros stay exactly zero
    codes, scales, mins = ex05.quantize_groups(w, 4, 8, False)
    assert mins[1, 1] == 0 and codes[1, 15] == 15  # 0..8 spans the 16 codes from 0


@graded(1)
def test_pack_int4(ex05):
    packed = ex05.pack_int4(torch.tensor([[1, 2, 15, 0], [0, 15, 7, 8]]))
    assert packed.dtype == torch.uint8 and packed.shape == (2, 2)
    assert packed.tolist() == [[0x21, 0x0F], [0xF0, 0x87]]
    codes = torch.randint(0, 16, (3, 10), generator=torch.Generator().manual_seed(1))
    packed = ex05.pack_int4(codes)
    for row in range(3):
        for c in range(5):
            assert packed[row, c].item() == codes[row, 2 * c].item() + 16 * codes[row, 2 * c + 1].item()


@graded(2)
@pytest.mark.parametrize("bits, group_size", [(4, 4), (4, 12), (8, 6), (8, 12)])
def test_dequantize_groups(ex05, bits, group_size):
    g = torch.Generator().manual_seed(bits * group_size)
    codes = torch.randint(0, 2**bits, (3, 12), generator=g)
    scales, mins = torch.rand(3, 12 // group_size, generator=g), -torch.rand(3, 12 // group_size, generator=g)
    if bits == 4:
        pairs = [[codes[r, 2 * c] + 16 * codes[r, 2 * c + 1] for c in range(6)] for r in range(3)]
        packed = torch.tensor(pairs, dtype=torch.uint8)
    else:
        packed = codes.to(torch.uint8)
    w = ex05.dequantize_groups(packed, scales, mins, bits, group_size)
    assert w.shape == (3, 12) and w.dtype == torch.float32
    for r in range(3):
        for k in range(12):
            want = scales[r, k // group_size] * codes[r, k] + mins[r, k // group_size]
            assert w[r, k].item() == pytest.approx(want.item(), abs=1e-6)


@graded(1)
def test_quantize_then_dequantize_is_within_half_a_step(ex05):
    w = randn(7, 64, seed=3)
    codes, scales, mins = ex05.quantize_groups(w, 4, 16, True)
    back = ex05.dequantize_groups(ex05.pack_int4(codes), scales, mins, 4, 16)
    assert ((back - w).abs() <= scales.repeat_interleave(16, dim=1) / 2 + 1e-6).all()


@graded(1)
def test_wanda_scores(ex05):
    w = torch.tensor([[0.1, -2.0, 1.0], [3.0, 0.5, -0.2]])
    x = torch.tensor([[10.0, 0.01, -1.0], [0.0, 0.02, 1.0]])  # input 0 is big, input 1 almost silent
    scores = ex05.wanda_scores(w, x)
    norms = [sum(x[t, k].item() ** 2 for t in range(2)) ** 0.5 for k in range(3)]
    for n in range(2):
        for k in range(3):
            assert scores[n, k].item() == pytest.approx(abs(w[n, k].item()) * norms[k], rel=1e-5)
    assert scores[0, 0] > scores[0, 1]  # the small weight on the loud input outranks the large one


@graded(1)
def test_two_four_mask(ex05):
    scores = torch.tensor([[0.1, 0.9, 0.5, 0.2, 4.0, 3.0, 2.0, 1.0],
                           [1.0, 1.0, 1.0, 1.0, 0.0, 5.0, 0.0, 6.0]])
    mask = ex05.two_four_mask(scores)
    assert mask.dtype == torch.bool
    assert mask.tolist() == [[False, True, True, False, True, True, False, False],
                             [True, True, False, False, False, True, False, True]]  # ties: earlier wins


@graded(1)
def test_two_four_mask_random(ex05):
    scores = torch.rand(9, 40, generator=torch.Generator().manual_seed(4))
    mask = ex05.two_four_mask(scores)
    for n in range(9):
        for j in range(10):
            quad = scores[n, 4 * j:4 * j + 4].tolist()
            kept = {i for i in range(4) if mask[n, 4 * j + i]}
            assert kept == set(sorted(range(4), key=lambda i: -quad[i])[:2])


def gptq_loops(w: torch.Tensor, u: torch.Tensor, scales: torch.Tensor, mins: torch.Tensor, bits: int):
    """One row at a time, one column at a time, in float64."""
    n, b = w.shape
    codes, errors = torch.zeros(n, b, dtype=torch.long), torch.zeros(n, b, dtype=torch.float64)
    for row in range(n):
        values = w[row].double().tolist()
        s, m = scales[row].item(), mins[row].item()
        for j in range(b):
            q = min(max(round((values[j] - m) / s), 0), 2**bits - 1)
            codes[row, j] = q
            errors[row, j] = (values[j] - (s * q + m)) / u[j, j].item()
            for later in range(j + 1, b):
                values[later] -= errors[row, j].item() * u[j, later].item()
    return codes, errors


@graded(2)
@pytest.mark.parametrize("bits", [4, 8])
def test_gptq_block(ex05, bits):
    n, b = 5, 12
    w = randn(n, b, seed=bits)
    x = randn(64, b, seed=10 + bits) @ (torch.eye(b) + 0.5 * randn(b, b, seed=20))  # correlated inputs
    h = 2 * x.T @ x / 64 + 0.01 * torch.eye(b)
    u = torch.linalg.cholesky(torch.linalg.inv(h.double()), upper=True).float()
    scales = 2 * w.abs().amax(1) / (2**bits - 1)
    mins = -(2 ** (bits - 1)) * scales
    before = w.clone()
    codes, errors = ex05.gptq_block(w, u, scales, mins, bits)
    assert torch.equal(w, before)  # the input is left alone
    want_codes, want_errors = gptq_loops(w, u, scales, mins, bits)
    assert codes.dtype == torch.uint8 and errors.shape == (n, b)
    assert (codes.long() != want_codes).sum() <= 1
    torch.testing.assert_close(errors.double(), want_errors, atol=1e-4, rtol=1e-4)


@graded(1)
def test_gptq_block_beats_rounding(ex05):
    b = 16
    x = randn(256, b, seed=5) @ (torch.eye(b) + 0.8 * randn(b, b, seed=6))
    h = 2 * x.T @ x / 256 + 0.01 * torch.eye(b)
    u = torch.linalg.cholesky(torch.linalg.inv(h.double()), upper=True).float()
    w = randn(8, b, seed=7)
    scales = 2 * w.abs().amax(1) / 15
    mins = -8 * scales
    codes, _ = ex05.gptq_block(w, u, scales, mins, 4)
    gptq = codes.float() * scales[:, None] + mins[:, None]
    rtn = torch.round((w - mins[:, None]) / scales[:, None]).clamp(0, 15) * scales[:, None] + mins[:, None]
    assert (x @ (w - gptq).T).norm() < (x @ (w - rtn).T).norm()  # the layer's output error is smaller
