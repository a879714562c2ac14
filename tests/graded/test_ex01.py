"""Graded tests for exercise set 01: the SSM step, segsum and the chunked SSD scan, hybrid layouts from ratio
patterns, and the fusion of an intra-layer hybrid's two branches.

Each test compares your answer with an independent computation (the token-by-token scan of the library, a
formula spelled out with loops, torch's RMSNorm) or checks a property, on awkward shapes: lengths that no
chunk size divides, one group or as many groups as heads, with and without an initial state. Run them with

    pytest tests/graded/test_ex01.py          (MINIHYBRID_IMPL=solutions to run the reference answers)
"""

import math

import adapters
import pytest
import torch
import torch.nn.functional as F

from minihybrid.kernels.scan import ssd_reference
from minihybrid.patterns import expand_ratio


def graded(points: int) -> pytest.MarkDecorator:
    return pytest.mark.graded(exercise="ex01", points=points)


@pytest.fixture
def ex01():
    """The ex01 functions under test (yours, or what MINIHYBRID_IMPL selects), through tests/adapters.py."""
    return adapters.load("ex01")


def generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def randn(*shape: int, seed: int = 0, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.randn(*shape, generator=generator(seed), dtype=dtype)


def ssm_inputs(batch, length, heads, groups, p, n, seed=0, dtype=torch.float64):
    """x, dt, A, B, C of a scan: dt in [0.05, 1.05) (already positive), A in (-1.5, -0.1] (a decay)."""
    x = randn(batch, length, heads, p, seed=seed, dtype=dtype)
    dt = 0.05 + torch.rand(batch, length, heads, generator=generator(seed + 1), dtype=dtype)
    A = -0.1 - 1.4 * torch.rand(heads, generator=generator(seed + 2), dtype=dtype)
    B = randn(batch, length, groups, n, seed=seed + 3, dtype=dtype)
    C = randn(batch, length, groups, n, seed=seed + 4, dtype=dtype)
    return x, dt, A, B, C


# One SSM step


def ssm_step_by_hand(state, x, dt, A, B, C):
    """The step written per head, with the group of head h spelled out as h // (H // G)."""
    heads, groups = x.shape[1], B.shape[1]
    new_state, y = torch.empty_like(state), torch.empty_like(x)
    for h in range(heads):
        g = h // (heads // groups)
        decay = torch.exp(dt[:, h] * A[h])[:, None, None]
        write = dt[:, h, None, None] * x[:, h, :, None] * B[:, g, None, :]
        new_state[:, h] = decay * state[:, h] + write
        y[:, h] = (new_state[:, h] * C[:, g, None, :]).sum(-1)
    return y, new_state


@graded(1)
@pytest.mark.parametrize(
    "batch, H, G, P, N", [(2, 4, 2, 3, 5), (1, 3, 1, 1, 2), (3, 4, 4, 2, 1)], ids=["G2-of-4", "G1", "G=H"]
)
def test_ssm_step_matches_the_recurrence(ex01, batch, H, G, P, N):
    x, dt, A, B, C = (t[:, 0] if t.dim() > 1 else t for t in ssm_inputs(batch, 1, H, G, P, N))
    state = randn(batch, H, P, N, seed=9)
    y, new_state = ex01.ssm_step(state, x, dt, A, B, C)
    assert y.shape == (batch, H, P) and new_state.shape == (batch, H, P, N)
    expected_y, expected_state = ssm_step_by_hand(state, x, dt, A, B, C)
    torch.testing.assert_close(new_state, expected_state)
    torch.testing.assert_close(y, expected_y)


@graded(1)
def test_ssm_step_decays_by_exp_dt_a_and_writes_dt_x_b(ex01):
    """With x = 0 the state only decays, by exp(dt * A); from a zero state it only holds dt * outer(x, B)."""
    x, dt, A, B, C = (t[:, 0] if t.dim() > 1 else t for t in ssm_inputs(2, 1, 4, 2, 3, 5, seed=3))
    state = randn(2, 4, 3, 5, seed=7)
    _, decayed = ex01.ssm_step(state, torch.zeros_like(x), dt, A, B, C)
    expected = torch.exp(dt * A)[..., None, None] * state
    torch.testing.assert_close(decayed, expected, msg=lambda m: f"the decay: {m}")
    _, written = ex01.ssm_step(torch.zeros_like(state), x, dt, A, B, C)
    B_per_head = B.repeat_interleave(2, dim=1)
    expected = dt[..., None, None] * x[..., :, None] * B_per_head[..., None, :]
    torch.testing.assert_close(written, expected, msg=lambda m: f"the write: {m}")


@graded(1)
def test_ssm_step_leaves_the_old_state_alone(ex01):
    x, dt, A, B, C = (t[:, 0] if t.dim() > 1 else t for t in ssm_inputs(1, 1, 2, 1, 3, 4, seed=5))
    state = randn(1, 2, 3, 4, seed=6)
    before = state.clone()
    ex01.ssm_step(state, x, dt, A, B, C)
    torch.testing.assert_close(state, before, atol=0, rtol=0, msg="ssm_step modified `state` in place")


# segsum


def segsum_by_hand(a: torch.Tensor) -> torch.Tensor:
    q = a.shape[-1]
    out = torch.full((*a.shape, q), -math.inf, dtype=a.dtype)
    for i in range(q):
        for j in range(i + 1):
            out[..., i, j] = a[..., j + 1 : i + 1].sum(-1)
    return out


@graded(1)
@pytest.mark.parametrize("shape", [(1,), (5,), (2, 3, 16)], ids=["Q1", "Q5", "batched-Q16"])
def test_segsum_sums_between_positions(ex01, shape):
    a = -torch.rand(*shape, generator=generator(1), dtype=torch.float64)
    out = ex01.segsum(a)
    assert out.shape == (*shape, shape[-1])
    expected = segsum_by_hand(a)
    torch.testing.assert_close(out, expected, atol=1e-12, rtol=0)
    q = shape[-1]
    assert torch.all(out.diagonal(dim1=-2, dim2=-1) == 0), "the diagonal is an empty sum: exactly 0"
    above = ~torch.ones(q, q, dtype=torch.bool).tril()
    assert torch.all(out[..., above] == -math.inf), "above the diagonal must be -inf (exp gives 0)"


@graded(1)
def test_exp_segsum_is_the_decay_from_token_j_to_token_i(ex01):
    """exp(segsum(dt * A))[i, j] = exp(dt_{j+1} A) * ... * exp(dt_i A), and 0 for j > i."""
    dt = 0.05 + torch.rand(9, generator=generator(2), dtype=torch.float64)
    decay = torch.exp(dt * -0.7)
    L = torch.exp(ex01.segsum(dt * -0.7))
    expected = torch.zeros(9, 9, dtype=torch.float64)
    for i in range(9):
        for j in range(i + 1):
            expected[i, j] = decay[j + 1 : i + 1].prod()
    torch.testing.assert_close(L, expected, atol=1e-12, rtol=1e-12)


# The chunked scan


SCAN_CASES = [  # batch, T, H, G, P, N, chunk_size, with an initial state
    (2, 1, 2, 1, 3, 4, 4, True),
    (1, 7, 4, 2, 3, 5, 3, True),
    (2, 7, 3, 3, 2, 4, 8, False),
    (1, 63, 2, 1, 4, 3, 16, False),
    (1, 65, 4, 4, 2, 3, 16, True),
    (2, 100, 4, 2, 3, 2, 64, True),
    (1, 64, 2, 2, 2, 2, 64, True),
    (1, 12, 2, 1, 3, 2, 1, True),
]


@graded(1)
@pytest.mark.parametrize(
    "batch, T, H, G, P, N, Q, with_state",
    SCAN_CASES,
    ids=[f"T{c[1]}-Q{c[6]}-G{c[3]}of{c[2]}-{'state' if c[7] else 'zeros'}" for c in SCAN_CASES],
)
def test_ssd_chunked_equals_the_sequential_scan(ex01, batch, T, H, G, P, N, Q, with_state):
    """y and the final state equal ssm_step token by token (the library's reference scan), in float64."""
    x, dt, A, B, C = ssm_inputs(batch, T, H, G, P, N)
    state = randn(batch, H, P, N, seed=8) if with_state else None
    y, final_state = ex01.ssd_chunked(x, dt, A, B, C, initial_state=state, chunk_size=Q)
    assert y.shape == (batch, T, H, P) and final_state.shape == (batch, H, P, N)
    expected_y, expected_state = ssd_reference(x, dt, A, B, C, initial_state=state)
    torch.testing.assert_close(final_state, expected_state, msg=lambda m: f"the final state: {m}")
    torch.testing.assert_close(y, expected_y, msg=lambda m: f"y: {m}")


@graded(1)
def test_ssd_chunked_float32(ex01):
    x, dt, A, B, C = ssm_inputs(2, 37, 4, 2, 8, 16, seed=4, dtype=torch.float32)
    state = randn(2, 4, 8, 16, seed=5, dtype=torch.float32)
    y, final_state = ex01.ssd_chunked(x, dt, A, B, C, initial_state=state, chunk_size=16)
    assert y.dtype == final_state.dtype == torch.float32
    expected_y, expected_state = ssd_reference(x.double(), dt.double(), A.double(), B.double(), C.double(),
                                               initial_state=state.double())
    torch.testing.assert_close(y, expected_y.float(), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(final_state, expected_state.float(), atol=1e-4, rtol=1e-4)


@graded(1)
def test_ssd_chunked_continues_from_its_final_state(ex01):
    """Scanning 30 tokens, then 23 more from the state it ended in, is scanning all 53 at once."""
    x, dt, A, B, C = ssm_inputs(1, 53, 2, 1, 3, 4, seed=6)
    y, final_state = ex01.ssd_chunked(x, dt, A, B, C, chunk_size=8)
    y1, state1 = ex01.ssd_chunked(x[:, :30], dt[:, :30], A, B[:, :30], C[:, :30], chunk_size=8)
    y2, state2 = ex01.ssd_chunked(x[:, 30:], dt[:, 30:], A, B[:, 30:], C[:, 30:], initial_state=state1,
                                  chunk_size=8)
    torch.testing.assert_close(torch.cat([y1, y2], dim=1), y)
    torch.testing.assert_close(state2, final_state)


# Hybrid layouts


PLACEMENT_NAMES = ["spread", "every", "front", "back", "sandwich", "center"]
RATIOS = ["1:1", "1:3", "1:5", "1:12", "2:3", "0:4", "3:0"]


@graded(1)
@pytest.mark.parametrize("placement", PLACEMENT_NAMES)
def test_expand_pattern_places_attention_blocks(ex01, placement):
    """Every ratio at 1, 2 and 3 times its period, as the library lays it out."""
    for ratio in RATIOS:
        a, b = (int(part) for part in ratio.split(":"))
        for n_layers in (a + b, 2 * (a + b), 3 * (a + b)):
            pattern = f"{ratio}@{placement}"
            got = ex01.expand_pattern(pattern, n_layers, other="M")
            assert got == expand_ratio(pattern, n_layers, other="M"), f"{pattern} with n_layers={n_layers}"
            assert got.count("A") == n_layers * a // (a + b)


@graded(1)
def test_expand_pattern_examples(ex01):
    assert ex01.expand_pattern("1:5", 12, "M") == "MMMAMMMMMAMM"  # spread is the default
    assert ex01.expand_pattern("1:5@spread", 12, "M") == "MMMAMMMMMAMM"
    assert ex01.expand_pattern("1:1") == "SA"
    assert ex01.expand_pattern("1:3", 8) == "SSASSSAS"
    assert ex01.expand_pattern("1:12", 26) == "S" * 6 + "A" + "S" * 12 + "A" + "S" * 6
    assert ex01.expand_pattern("2:3", 5) == "SASAS"
    assert ex01.expand_pattern("1:5@every", 12) == "ASSSSSASSSSS"
    assert ex01.expand_pattern("2:4@sandwich") == "ASSSSA"
    assert ex01.expand_pattern("3:3@sandwich") == "AASSSA"  # the odd one out at the front
    assert ex01.expand_pattern("1:4@center", 10) == "SSSSAASSSS"
    assert ex01.expand_pattern("1:3@back", 8, other="s", attention="x") == "ssssssxx"
    assert ex01.expand_pattern("1:3@front", 4, other="M", attention="G") == "GMMM"


BAD_PATTERNS = [  # pattern, n_layers
    ("1-5", None), ("1:5:2", None), ("a:5", None), ("", None), ("1:", None), ("1:5@middle", 6),
    ("-1:5", None), ("0:0", None), ("1:5", 8), ("1:5", 0), ("1:5", -6),
]


@graded(2)
def test_expand_pattern_refuses_bad_patterns(ex01):
    for pattern, n_layers in BAD_PATTERNS:
        with pytest.raises(ValueError):
            ex01.expand_pattern(pattern, n_layers)
            pytest.fail(f"expand_pattern({pattern!r}, n_layers={n_layers}) should raise ValueError")


# Fusing the branches of an intra-layer hybrid


@graded(1)
@pytest.mark.parametrize("fusion", ["concat", "diff"])
@pytest.mark.parametrize("shape", [(2, 7, 16), (1, 1, 8)], ids=["B2-T7-W16", "B1-T1-W8"])
def test_fuse_branches_matches_two_rms_norms(ex01, fusion, shape):
    attn_out, ssm_out = 3 * randn(*shape), 0.2 * randn(*shape, seed=1)
    attn_weight, ssm_weight = 1 + randn(shape[-1], seed=2), 0.5 + randn(shape[-1], seed=3)
    out = ex01.fuse_branches(attn_out, ssm_out, attn_weight, ssm_weight, fusion=fusion, eps=1e-5)
    a = F.rms_norm(attn_out, shape[-1:], attn_weight, eps=1e-5)
    s = F.rms_norm(ssm_out, shape[-1:], ssm_weight, eps=1e-5)
    expected = torch.cat([a, s], dim=-1) if fusion == "concat" else a - s
    assert out.shape == expected.shape
    torch.testing.assert_close(out, expected)


@graded(1)
def test_fuse_branches_eps_goes_inside_the_square_root(ex01):
    attn_out, ssm_out = 1e-3 * randn(2, 3, 8), 1e-3 * randn(2, 3, 8, seed=1)
    ones = torch.ones(8, dtype=torch.float64)
    for eps in (1e-6, 1e-2):
        out = ex01.fuse_branches(attn_out, ssm_out, ones, ones, fusion="concat", eps=eps)
        expected = [t / torch.sqrt(t.pow(2).mean(dim=-1, keepdim=True) + eps) for t in (attn_out, ssm_out)]
        torch.testing.assert_close(out, torch.cat(expected, dim=-1), atol=1e-7, rtol=1e-4)


@graded(1)
def test_fuse_branches_normalises_each_branch_on_its_own(ex01):
    """Scaling one branch by 1000 changes nothing (eps aside): neither branch can drown the other."""
    attn_out, ssm_out = randn(2, 5, 16), randn(2, 5, 16, seed=1)
    attn_weight, ssm_weight = 1 + randn(16, seed=2), 1 + randn(16, seed=3)
    for fusion in ("concat", "diff"):
        out = ex01.fuse_branches(attn_out, ssm_out, attn_weight, ssm_weight, fusion=fusion, eps=1e-12)
        loud = ex01.fuse_branches(1000 * attn_out, ssm_out, attn_weight, ssm_weight, fusion=fusion, eps=1e-12)
        torch.testing.assert_close(loud, out)


@graded(1)
def test_fuse_branches_refuses_an_unknown_fusion(ex01):
    t, w = randn(1, 2, 4), torch.ones(4, dtype=torch.float64)
    with pytest.raises(ValueError):
        ex01.fuse_branches(t, t, w, w, fusion="sum")
