"""Graded tests for exercise set 04: greedy acceptance of drafted tokens, the rollback of a sliding-window KV
ring, CLaSp's dynamic program over skipped layers, and the speculative sampling rule.

Each test compares your answer with an independent computation (a token-by-token loop, a ring buffer
filled one position at a time, the dynamic program one cell at a time, every subset of layers tried, the
output distribution summed over the draft's tokens and a grid of uniforms) or with a small case worked out
by hand, on awkward sizes: nothing drafted, everything accepted, rollbacks right at the edge of what the
ring still holds, skipping no layer or all of them, tied similarities. Run them with

    pytest tests/graded/test_ex04.py          (MINIHYBRID_IMPL=solutions to run the reference answers)
"""

import itertools

import adapters
import pytest
import torch

cosine = torch.nn.functional.cosine_similarity


def graded(points: int) -> pytest.MarkDecorator:
    return pytest.mark.graded(exercise="ex04", points=points)


@pytest.fixture
def ex04():
    """The ex04 functions under test (yours, or what MINIHYBRID_IMPL selects), through tests/adapters.py."""
    return adapters.load("ex04")


def generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def longs(values: list[int]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.long)


# Greedy acceptance


@graded(1)
@pytest.mark.parametrize("drafted, target, expected", [
    ([5, 7, 2], [5, 7, 9, 4], (2, 9)),   # a correction at the first disagreement
    ([5], [5, 3], (1, 3)),               # all accepted: the bonus token
    ([], [8], (0, 8)),                   # nothing drafted: one token from the full model
    ([1, 2, 3], [4, 2, 3, 6], (0, 4)),   # later agreements do not count after a disagreement
    ([3, 3, 3, 3], [3, 3, 3, 3, 1], (4, 1)),
])
def test_accept_greedy_by_hand(ex04, drafted, target, expected):
    k, token = ex04.accept_greedy(longs(drafted), longs(target))
    assert (k, token) == expected
    assert isinstance(k, int) and isinstance(token, int)


@graded(1)
def test_accept_greedy_matches_a_loop(ex04):
    g = generator(0)
    for n in range(9):
        for _ in range(20):
            target = torch.randint(0, 4, (n + 1,), generator=g)  # a small vocabulary: long agreeing runs
            drafted = torch.where(torch.rand(n, generator=g) < 0.8, target[:n], torch.randint(0, 4, (n,),
                                                                                              generator=g))
            k = 0
            while k < n and drafted[k] == target[k]:
                k += 1
            assert ex04.accept_greedy(drafted, target) == (k, target[k].item())


# Rollback of a sliding-window ring


def filled_ring(capacity: int, written: int) -> torch.Tensor:
    """key_pos of a ring of ``capacity`` slots after positions 0..written-1 were written one at a time."""
    key_pos = [-1] * capacity
    for position in range(written):
        key_pos[position % capacity] = position
    return longs(key_pos)


@graded(1)
def test_rollback_ring_by_hand(ex04):
    key_pos = longs([4, 5, 2, 3])  # capacity 4, window 3, positions 0..5 written
    assert ex04.rollback_ring(key_pos, 6, 3, 4).tolist() == [-1, -1, 2, 3]
    assert ex04.rollback_ring(key_pos, 6, 3, 6).tolist() == [4, 5, 2, 3]  # nothing to forget
    with pytest.raises(ValueError):
        ex04.rollback_ring(key_pos, 6, 3, 3)  # the token at 3 needs position 1, overwritten by 5
    assert key_pos.tolist() == [4, 5, 2, 3]  # the input is left alone


@graded(2)
@pytest.mark.parametrize("capacity, window", [(6, 4), (9, 5), (12, 12), (5, 2)])
def test_rollback_ring_matches_a_filled_ring(ex04, capacity, window):
    for written in range(3 * capacity):
        key_pos = filled_ring(capacity, written)
        held = set(range(max(written - capacity, 0), written))
        for pos in range(written + 1):
            needed = set(range(max(pos - window + 1, 0), pos))
            if not needed <= held:
                with pytest.raises(ValueError):
                    ex04.rollback_ring(key_pos, written, window, pos)
                continue
            before = key_pos.clone()
            got = ex04.rollback_ring(key_pos, written, window, pos)
            assert torch.equal(key_pos, before), "the input key_pos must not change"
            expected = [p if 0 <= p < pos else -1 for p in key_pos.tolist()]
            assert got.tolist() == expected, f"capacity {capacity}, written {written}, rollback to {pos}"


@graded(1)
def test_rollback_ring_needs_position_zero(ex04):
    key_pos = longs([4, 1, 2, 3])  # capacity 4, window 3, positions 0..4 written: only position 0 is gone
    with pytest.raises(ValueError):
        ex04.rollback_ring(key_pos, 5, 3, 2)  # the token at 2 needs positions 0 and 1
    with pytest.raises(ValueError):
        ex04.rollback_ring(key_pos, 5, 3, 1)  # the token at 1 needs position 0
    assert ex04.rollback_ring(key_pos, 5, 3, 0).tolist() == [-1] * 4  # the token at 0 needs nothing
    assert ex04.rollback_ring(key_pos, 5, 3, 3).tolist() == [-1, 1, 2, -1]  # needs 1 and 2: both kept


@graded(1)
def test_rollback_ring_partly_filled_and_to_zero(ex04):
    key_pos = filled_ring(8, 5)  # [0, 1, 2, 3, 4, -1, -1, -1]
    assert ex04.rollback_ring(key_pos, 5, 4, 2).tolist() == [0, 1] + [-1] * 6
    assert ex04.rollback_ring(key_pos, 5, 4, 0).tolist() == [-1] * 8
    ring = filled_ring(8, 20)  # positions 12..19 held
    assert ex04.rollback_ring(ring, 20, 4, 15).tolist() == [-1, -1, -1, -1, 12, 13, 14, -1]


# CLaSp's skip set


def residual_layers(scales: list[float], d: int, seed: int):
    """run_layer for layers x -> x + scale_l tanh(x W_l), float64, with the full model's states on a random
    embedding: (full_states (L + 1, d), run_layer). A layer of scale 0 is the identity."""
    g = generator(seed)
    weights = torch.randn(len(scales), d, d, generator=g, dtype=torch.float64) / d**0.5

    def run_layer(layer: int, x: torch.Tensor) -> torch.Tensor:
        return x + scales[layer] * torch.tanh(x @ weights[layer])

    states = [torch.randn(1, d, generator=g, dtype=torch.float64)]
    for layer in range(len(scales)):
        states.append(run_layer(layer, states[-1]))
    return torch.cat(states), run_layer


def draft_state(full_states: torch.Tensor, run_layer, skip_set) -> torch.Tensor:
    """The last state of the model with the layers in skip_set left out."""
    x = full_states[:1]
    for layer in range(full_states.shape[0] - 1):
        if layer not in skip_set:
            x = run_layer(layer, x)
    return x[0]


def dp_one_cell_at_a_time(full_states: torch.Tensor, run_layer, n_skip: int) -> list[int]:
    """The dynamic program written cell by cell: best[(i, j)] = (state, layers skipped on its path)."""
    n_layers = full_states.shape[0] - 1
    best = {(0, 0): (full_states[0], [])}
    for i in range(1, n_layers + 1):
        for j in range(min(i, n_skip) + 1):
            candidates = []
            if j <= i - 1:
                state, path = best[(i - 1, j)]
                candidates.append((run_layer(i - 1, state[None])[0], path))
            if j >= 1:
                state, path = best[(i - 1, j - 1)]
                candidates.append((state, path + [i - 1]))
            if len(candidates) == 2:  # (run, skip): skip only when strictly closer
                run, skip = candidates
                take_skip = cosine(skip[0], full_states[i], dim=0) > cosine(run[0], full_states[i], dim=0)
                candidates = [skip if take_skip else run]
            best[(i, j)] = candidates[0]
    return sorted(best[(n_layers, n_skip)][1])


@graded(1)
def test_clasp_skips_identity_layers(ex04):
    full_states, run_layer = residual_layers([1.0, 1.0, 0.0, 1.0, 1.0], 8, seed=0)
    assert ex04.clasp_skip_set(full_states, run_layer, 1) == [2]
    full_states, run_layer = residual_layers([1.0, 0.0, 1.0, 0.0, 1.0, 1.0], 8, seed=1)
    assert ex04.clasp_skip_set(full_states, run_layer, 2) == [1, 3]


@graded(1)
def test_clasp_keeps_the_layer_that_changes_the_state_most(ex04):
    for big in range(5):
        scales = [0.05] * 5
        scales[big] = 3.0
        full_states, run_layer = residual_layers(scales, 8, seed=big)
        for n_skip in (3, 4):
            skip_set = ex04.clasp_skip_set(full_states, run_layer, n_skip)
            assert len(skip_set) == n_skip and big not in skip_set, f"layer {big} changes the state most"


@graded(1)
def test_clasp_ties_run_the_layer(ex04):
    full_states = torch.zeros(6, 4, dtype=torch.float64)
    full_states[:, 0] = 1.0  # every state the same one-hot vector: every comparison is an exact tie

    def identity(layer: int, x: torch.Tensor) -> torch.Tensor:
        return x.clone()

    for n_skip in range(6):  # ties run, so the skips go as late in the backtrack as possible: layers 0..
        assert ex04.clasp_skip_set(full_states, identity, n_skip) == list(range(n_skip))


@graded(1)
def test_clasp_one_batched_call_per_layer(ex04):
    full_states, run_layer = residual_layers([0.5, 0.2, 1.0, 0.1, 0.7, 0.3, 0.9], 8, seed=3)
    calls = []

    def counting(layer: int, x: torch.Tensor) -> torch.Tensor:
        assert x.dim() == 2 and x.shape[1] == 8, "run_layer takes a (J, d) stack of states"
        calls.append((layer, x.shape[0]))
        return run_layer(layer, x)

    for n_skip in (0, 3, 7):
        calls.clear()
        skip_set = ex04.clasp_skip_set(full_states, counting, n_skip)
        assert [layer for layer, _ in calls] == list(range(7)), "one call per layer, in order"
        assert all(rows <= n_skip + 1 for _, rows in calls)
        assert len(skip_set) == n_skip and all(isinstance(layer, int) for layer in skip_set)
        if n_skip in (0, 7):
            assert skip_set == list(range(n_skip)), "skip nothing, or every layer"


@graded(2)
@pytest.mark.parametrize("seed", range(4))
def test_clasp_matches_the_dp_one_cell_at_a_time(ex04, seed):
    scales = (0.1 + 0.9 * torch.rand(8, generator=generator(100 + seed))).tolist()
    full_states, run_layer = residual_layers(scales, 16, seed)
    for n_skip in range(9):
        expected = dp_one_cell_at_a_time(full_states, run_layer, n_skip)
        assert ex04.clasp_skip_set(full_states, run_layer, n_skip) == expected, f"n_skip={n_skip}"


@graded(2)
def test_clasp_is_close_to_the_best_subset(ex04):
    """Every subset tried, L = 6: the program is approximate, but it finds the best subset most of the
    time and is never far from it."""
    found_best, positions = 0, []
    for seed in range(8):
        scales = (0.1 + 0.9 * torch.rand(6, generator=generator(200 + seed))).tolist()
        full_states, run_layer = residual_layers(scales, 16, seed)
        for n_skip in range(1, 6):
            scores = [cosine(draft_state(full_states, run_layer, set(subset)), full_states[-1], dim=0).item()
                      for subset in itertools.combinations(range(6), n_skip)]
            skip_set = ex04.clasp_skip_set(full_states, run_layer, n_skip)
            assert len(set(skip_set)) == n_skip and all(0 <= layer < 6 for layer in skip_set)
            score = cosine(draft_state(full_states, run_layer, set(skip_set)), full_states[-1], dim=0).item()
            found_best += score >= max(scores) - 1e-12
            positions.append((score - min(scores)) / (max(scores) - min(scores)))  # 1: the best, 0: the worst
    assert found_best >= 25, f"the best subset found in {found_best} of 40 cases"
    assert sum(positions) / len(positions) > 0.9 and min(positions) > 0.5


@graded(1)
def test_clasp_bad_input(ex04):
    full_states, run_layer = residual_layers([0.5, 0.5, 0.5], 4, seed=0)
    for n_skip in (-1, 4):
        with pytest.raises(ValueError):
            ex04.clasp_skip_set(full_states, run_layer, n_skip)
    for bad in (full_states[0], full_states[None]):
        with pytest.raises(ValueError):
            ex04.clasp_skip_set(bad, run_layer, 1)


# Speculative sampling


def random_distributions(rows: int, vocab: int, seed: int) -> torch.Tensor:
    return torch.softmax(2 * torch.randn(rows, vocab, generator=generator(seed), dtype=torch.float64), dim=-1)


@graded(1)
def test_accept_sampled_by_hand(ex04):
    q = torch.tensor([[0.5, 0.5, 0.0], [0.2, 0.8, 0.0], [0.1, 0.6, 0.3]], dtype=torch.float64)
    p = torch.tensor([[0.25, 0.5, 0.25], [0.4, 0.2, 0.4], [0.4, 0.3, 0.3], [0.1, 0.1, 0.8]],
                     dtype=torch.float64)
    drafted = longs([0, 0, 1])
    # token 0 at 0: ratio 0.5, u 0.4 accepts; at 1: ratio 2 always accepts; token 1 at 2: ratio 0.5, u 0.5
    k, dist = ex04.accept_sampled(drafted, q, p, torch.tensor([0.4, 0.99, 0.5], dtype=torch.float64))
    assert k == 2
    torch.testing.assert_close(dist, torch.tensor([0.3, 0.0, 0.0], dtype=torch.float64) / 0.3)
    k, dist = ex04.accept_sampled(drafted, q, p, torch.tensor([0.6, 0.0, 0.0], dtype=torch.float64))
    assert k == 0  # rejected at 0: residual max(p - q, 0) = [0, 0, 0.25]
    torch.testing.assert_close(dist, torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64))
    k, dist = ex04.accept_sampled(drafted, q, p, torch.tensor([0.1, 0.5, 0.2], dtype=torch.float64))
    assert k == 3  # all accepted: the bonus token's distribution
    torch.testing.assert_close(dist, p[3])


@graded(1)
def test_accept_sampled_nothing_drafted_and_empty_residual(ex04):
    p = random_distributions(1, 5, seed=0)
    k, dist = ex04.accept_sampled(longs([]), torch.zeros(0, 5, dtype=torch.float64), p,
                                  torch.zeros(0, dtype=torch.float64))
    assert k == 0
    torch.testing.assert_close(dist, p[0])
    q = random_distributions(1, 5, seed=1)
    p = torch.cat((q * (1 - 1e-6), q))  # rounding: p a hair below q everywhere, so max(p - q, 0) is all 0
    k, dist = ex04.accept_sampled(longs([2]), q, p, torch.tensor([0.9999995], dtype=torch.float64))
    assert k == 0
    torch.testing.assert_close(dist, p[0])


def first_token_distribution(ex04, q: torch.Tensor, p: torch.Tensor, grid: int = 2000) -> torch.Tensor:
    """P(first token written = y), summed over the drafted token x ~ q[0] and u on a grid of ``grid`` points:
    q(x) P(accept | x) for y = x, plus q(x) P(reject | x) residual_x(y)."""
    vocab = q.shape[1]
    out = torch.zeros(vocab, dtype=torch.float64)
    for x in range(vocab):
        accepted = 0
        for step in range(grid):
            u = torch.tensor([(step + 0.5) / grid], dtype=torch.float64)
            k, dist = ex04.accept_sampled(longs([x]), q, p, u)
            if k == 1:
                accepted += 1
            else:
                out += q[0, x] * dist / grid
        out[x] += q[0, x] * accepted / grid
    return out


@graded(2)
@pytest.mark.parametrize("seed", range(3))
def test_accept_sampled_writes_the_full_models_distribution(ex04, seed):
    q, p = random_distributions(1, 5, seed), random_distributions(2, 5, seed + 10)
    torch.testing.assert_close(first_token_distribution(ex04, q, p), p[0], atol=2e-3, rtol=0)


@graded(1)
def test_accept_sampled_monte_carlo(ex04):
    """Two drafted tokens, many rounds: the first token written follows p[0], the second (when the first
    was accepted) p[1]."""
    vocab, rounds = 4, 20000
    q, p = random_distributions(2, vocab, seed=5), random_distributions(3, vocab, seed=6)
    g = generator(7)
    first, second = torch.zeros(vocab), torch.zeros(vocab)
    drafts = torch.stack([torch.multinomial(row, rounds, replacement=True, generator=g) for row in q], dim=1)
    uniforms = torch.rand(rounds, 2, generator=g, dtype=torch.float64)
    for drafted, u in zip(drafts, uniforms):
        k, dist = ex04.accept_sampled(drafted, q, p, u)
        written = drafted[:k].tolist() + [torch.multinomial(dist, 1, generator=g).item()]
        first[written[0]] += 1
        if len(written) > 1:
            second[written[1]] += 1
    torch.testing.assert_close(first / rounds, p[0].float(), atol=0.015, rtol=0)
    torch.testing.assert_close(second / second.sum(), p[1].float(), atol=0.015, rtol=0)
