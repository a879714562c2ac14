"""Layer selection for self-speculative drafts: CLaSp's dynamic program against every subset of a toy stack,
the batched layer runner on a real model's cache, and the skip policies.

Dimensions: L blocks, d d_model, M layers skipped, J states in one batched layer call, T prompt tokens.
"""

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from minihybrid import HybridLM, ModelConfig, layer_select
from minihybrid.layer_select import (
    CLaSp,
    FixedSkip,
    NoSkip,
    PrefixView,
    RandomSkip,
    dp_skip_set,
    layer_runner,
)
from minihybrid.speculative import speculative_generate

N_LAYERS = 6


def mlp_stack(scales: list[float], d: int = 12, seed: int = 0):
    """A toy residual stack in float64: layer l maps x (J, d) to x + scale_l relu(x A_l) B_l (scale 0: the
    identity). Returns (the full model's states (L + 1, d) from a random input, run_layer)."""
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(len(scales), d, 2 * d, generator=g, dtype=torch.float64) / d ** 0.5
    b = torch.randn(len(scales), 2 * d, d, generator=g, dtype=torch.float64) / (2 * d) ** 0.5

    def run_layer(layer: int, x: torch.Tensor) -> torch.Tensor:
        return x + scales[layer] * torch.relu(x @ a[layer]) @ b[layer]

    states = [torch.randn(1, d, generator=g, dtype=torch.float64)]
    for layer in range(len(scales)):
        states.append(run_layer(layer, states[-1]))
    return torch.cat(states), run_layer


def final_cosine(full_states: torch.Tensor, run_layer, skip_set) -> float:
    """Cosine between the stack's last state with `skip_set` left out and the full model's."""
    x = full_states[:1]
    for layer in range(full_states.shape[0] - 1):
        if layer not in skip_set:
            x = run_layer(layer, x)
    return F.cosine_similarity(x[0], full_states[-1], dim=0).item()


def every_subset(full_states: torch.Tensor, run_layer, n_skip: int) -> dict[tuple[int, ...], float]:
    """Brute force: the final cosine of every skip set of n_skip layers."""
    layers = range(full_states.shape[0] - 1)
    return {subset: final_cosine(full_states, run_layer, set(subset))
            for subset in itertools.combinations(layers, n_skip)}


def random_scales(seed: int) -> list[float]:
    return (0.2 + torch.rand(N_LAYERS, generator=torch.Generator().manual_seed(50 + seed))).tolist()


# The dynamic program against brute force


@pytest.mark.parametrize("identity", [(2,), (0, 5), (1, 3, 4), (0, 1, 2, 3, 4)])
def test_identity_layers_are_skipped_first(identity):
    scales = [0.0 if layer in identity else 0.8 for layer in range(N_LAYERS)]
    full_states, run_layer = mlp_stack(scales, seed=len(identity))
    search = dp_skip_set(full_states, run_layer, len(identity))
    assert search.skip_set == list(identity)
    best = max(every_subset(full_states, run_layer, len(identity)).values())
    assert final_cosine(full_states, run_layer, set(identity)) == pytest.approx(best, abs=1e-12)
    assert best == pytest.approx(1.0, abs=1e-12)


def test_identity_layer_found_among_nearly_identity_layers_in_float64():
    """Layers that change the state by ~1e-4: run and skip cosines differ by far less than float32 resolves
    near 1, but float64 states resolve them."""
    scales = [1e-4, 1e-4, 0.0, 1e-4, 1e-4, 1e-4]
    full_states, run_layer = mlp_stack(scales, seed=1)
    assert dp_skip_set(full_states, run_layer, 1).skip_set == [2]


def test_close_to_the_best_subset():
    """The program is greedy per cell, so it is close to, not always at, the best subset: over 50 random cases
    (measured: the best in 37, at worst 0.16 below the best cosine, on average 0.97 of the way from the worst
    subset to the best) it finds the best in at least 30, is never 0.2 below it, and averages above 0.9."""
    found_best, gaps, positions = 0, [], []
    for seed in range(10):
        full_states, run_layer = mlp_stack(random_scales(seed), seed=seed)
        for n_skip in range(1, N_LAYERS):
            scores = every_subset(full_states, run_layer, n_skip)
            search = dp_skip_set(full_states, run_layer, n_skip)
            assert len(search.skip_set) == n_skip == len(set(search.skip_set))
            got = final_cosine(full_states, run_layer, set(search.skip_set))
            assert search.scores[N_LAYERS, n_skip].item() == pytest.approx(got, abs=1e-6)  # D(L, M)
            best, worst = max(scores.values()), min(scores.values())
            found_best += got >= best - 1e-12
            gaps.append(best - got)
            positions.append((got - worst) / (best - worst))
    assert found_best >= 30, f"the best subset in {found_best} of 50 cases"
    assert max(gaps) < 0.2 and sum(positions) / len(positions) > 0.9


@pytest.mark.parametrize("n_skip", [0, 1, 3, N_LAYERS])
def test_one_batched_call_per_layer_and_the_scores_table(n_skip):
    full_states, run_layer = mlp_stack(random_scales(0))
    calls = []

    def recording(layer: int, x: torch.Tensor) -> torch.Tensor:
        calls.append((layer, tuple(x.shape)))
        return run_layer(layer, x)

    search = dp_skip_set(full_states, recording, n_skip)
    assert calls == [(layer, (min(layer, n_skip) + 1, 12)) for layer in range(N_LAYERS)]
    scores = search.scores
    assert scores.shape == (N_LAYERS + 1, n_skip + 1) and scores[0, 0] == 1
    i, j = torch.meshgrid(torch.arange(N_LAYERS + 1), torch.arange(n_skip + 1), indexing="ij")
    assert torch.equal(scores.isnan(), j > i), "NaN exactly where more layers are skipped than seen"
    held = scores[~scores.isnan()]
    assert ((held >= -1 - 1e-6) & (held <= 1 + 1e-6)).all()
    if n_skip == 0:
        assert search.skip_set == [] and torch.allclose(scores[:, 0], torch.ones_like(scores[:, 0]))
    if n_skip == N_LAYERS:
        assert search.skip_set == list(range(N_LAYERS))


@pytest.mark.parametrize("n_skip, states, message", [
    (-1, None, "n_skip must be"),
    (N_LAYERS + 1, None, "exceeds the 6 layers"),
    (1, "1-D", "full_states must be"),
    (1, "3-D", "full_states must be"),
    (1, "list", "full_states must be"),
])
def test_dp_bad_input(n_skip, states, message):
    full_states, run_layer = mlp_stack(random_scales(0))
    bad = {None: full_states, "1-D": full_states[0], "3-D": full_states[None], "list": full_states.tolist()}
    with pytest.raises(ValueError, match=message):
        dp_skip_set(bad[states], run_layer, n_skip)


# The batched layer runner on a real model


def tiny_model(pattern: str = "AAA", **changes) -> HybridLM:
    torch.manual_seed(0)
    config = ModelConfig(vocab_size=32, d_model=32, n_heads=4, n_kv_heads=2, pattern=pattern, max_seq_len=64,
                         init_std=0.2, **changes)
    return HybridLM(config).double().eval()


def snapshot(cache) -> list:
    return [(layer.k.clone(), layer.v.clone(), layer.length) for layer in cache.layers] + [cache.pos]


def same_snapshot(a: list, b: list) -> bool:
    return all(torch.equal(x, y) if isinstance(x, torch.Tensor) else x == y
               for one, two in zip(a[:-1], b[:-1]) for x, y in zip(one, two)) and a[-1] == b[-1]


@torch.inference_mode()
def test_layer_runner_reproduces_the_models_own_states_and_writes_nothing():
    """Block i on J copies of h_i at position pos, attending over the cached prefix 0..pos-1 only, gives
    h_{i+1} at pos: the pseudo-batch attends exactly as the real pass did."""
    model = tiny_model()
    prompt = torch.randint(0, 32, (1, 9), generator=torch.Generator().manual_seed(1))
    cache = model.init_cache(1, 16)
    _, hidden = model(prompt, cache=cache, return_hidden=True)
    before = snapshot(cache)
    for pos in (0, 4, 8):  # 8: the last token; 0 and 4: later positions in the cache must be ignored
        run_layer = layer_runner(model, cache, pos)
        for i in range(len(model.blocks)):
            states = hidden[i][0, pos].expand(3, -1)
            torch.testing.assert_close(run_layer(i, states), hidden[i + 1][0, pos].expand(3, -1),
                                       atol=1e-12, rtol=0)
            mixed = torch.stack((hidden[i][0, pos], hidden[i][0, max(pos - 1, 0)], hidden[0][0, pos]))
            rows = torch.cat([run_layer(i, row[None]) for row in mixed])
            torch.testing.assert_close(run_layer(i, mixed), rows, atol=1e-12, rtol=0)  # rows independent
    assert same_snapshot(snapshot(cache), before), "the runner wrote into the cache"


def test_prefix_view_refuses_windows_and_other_positions():
    model = tiny_model("AS", mixer_options={"S": {"window": 4}})
    cache = model.init_cache(1, 16)
    with torch.inference_mode():
        model(torch.zeros(1, 6, dtype=torch.long), cache=cache)
    with pytest.raises(ValueError, match="full-attention KV caches"):
        PrefixView(cache.layers[1], 5)
    view = PrefixView(cache.layers[0], 5)
    k = torch.zeros(2, 2, 1, 8, dtype=torch.float64)
    with pytest.raises(ValueError, match="one token at position 5"):
        view.update(k, k, 4)
    with pytest.raises(ValueError, match="one token at position 5"):
        view.update(torch.cat((k, k), dim=2), torch.cat((k, k), dim=2), 5)
    keys, values, key_pos = view.update(k, k, 5)
    assert keys.shape == values.shape == (2, 2, 6, 8) and key_pos is None


def test_layer_runner_refuses_side_input_blocks():
    model = tiny_model("AE")
    cache = model.init_cache(1, 8)
    with torch.inference_mode():
        model(torch.zeros(1, 3, dtype=torch.long), cache=cache)
        with pytest.raises(ValueError, match="side inputs"):
            layer_runner(model, cache, 2)(1, torch.zeros(2, 32, dtype=torch.float64))


# Policies


@pytest.mark.parametrize("interval", [1, 3])
def test_clasp_reselects_every_interval_rounds(monkeypatch, interval):
    """One DP after prefill, then one after every `interval`-th verify round; each round drafts with the set
    of the latest DP."""
    chosen = []

    def counting(*args, **kwargs):
        search = dp_skip_set(*args, **kwargs)
        chosen.append(tuple(search.skip_set))
        return search

    monkeypatch.setattr(layer_select, "dp_skip_set", counting)
    model = tiny_model("AAAA")
    policy = CLaSp(2, interval=interval)
    out = speculative_generate(model, torch.tensor([[1, 2, 3]]), 20, skip=policy, max_draft=3, threshold=0)
    rounds = out.stats.rounds
    assert len(chosen) == -(-(rounds + 1) // interval) and policy.calls == rounds + 1
    assert out.stats.skip_sets == [chosen[r // interval] for r in range(rounds)]
    assert all(len(s) == 2 for s in chosen) and policy.skip_set == chosen[-1]
    assert list(policy.last.skip_set) == list(chosen[-1])


def test_random_skip_is_seeded():
    model = tiny_model("AAAAAA")
    sets = []
    for seed in range(12):
        policy = RandomSkip(3, seed=seed)
        policy.start(model)
        first = policy.skip_set
        policy.start(model)
        assert policy.skip_set == first, "the same set at every start"
        assert len(first) == 3 == len(set(first)) and all(0 <= i < 6 for i in first) and list(first) == \
            sorted(first)
        sets.append(first)
    assert len(set(sets)) > 4, "different seeds draw different sets"
    none = RandomSkip(0)
    none.start(model)
    assert none.skip_set == ()


def test_policy_defaults_and_names():
    model = tiny_model()
    fixed = FixedSkip([2, 0, 2])
    fixed.start(model)
    assert fixed.skip_set == (0, 2) and not fixed.needs_hidden and fixed.name == "fixed [0, 2]"
    assert NoSkip().skip_set == () and NoSkip().name == "none"
    assert RandomSkip(1, seed=4).name == "random 1"
    clasp = CLaSp(1, interval=5)
    assert clasp.needs_hidden and clasp.name == "CLaSp 1 every 5"


@pytest.mark.parametrize("make, message", [
    (lambda: FixedSkip([3]), "not block indices in 0..2"),
    (lambda: FixedSkip([-1]), "not block indices"),
    (lambda: FixedSkip([0, 1, 2]), "would skip all 3 blocks"),
    (lambda: RandomSkip(3), "would skip all 3 blocks"),
    (lambda: CLaSp(3), "would skip all 3 blocks"),
], ids=["out of range", "negative", "all", "random all", "clasp all"])
def test_policies_refuse_bad_sets_at_start(make, message):
    with pytest.raises(ValueError, match=message):
        make().start(tiny_model())


def test_fixed_skip_takes_integer_like_indices():
    assert FixedSkip([np.int64(1), 0]).skip_set == (0, 1)
    assert FixedSkip(torch.tensor([2, 0, 2])).skip_set == (0, 2)
    assert all(type(i) is int for i in FixedSkip(torch.tensor([1])).skip_set)


@pytest.mark.parametrize("skip_set, message", [
    ([True], r"\[True\] are not integers"),
    ([1.0], r"\[1.0\] are not integers"),
    (torch.tensor([1.0]), "are not integers"),
    (torch.tensor([True]), "are not integers"),
    ([np.bool_(True)], "are not integers"),
    (1, "must be an iterable of block indices, got int"),
    ("01", "must be an iterable of block indices, got str"),
], ids=["bool", "float", "float tensor", "bool tensor", "numpy bool", "int", "str"])
def test_fixed_skip_refuses_what_is_not_block_indices(skip_set, message):
    with pytest.raises(TypeError, match=message):
        FixedSkip(skip_set)


@pytest.mark.parametrize("make, message", [
    (lambda: RandomSkip(-1), "n_skip must be"),
    (lambda: CLaSp(-1), "n_skip must be"),
    (lambda: CLaSp(1, interval=0), "interval must be"),
], ids=["random negative", "clasp negative", "interval 0"])
def test_policies_refuse_bad_options(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_clasp_on_a_windowed_model_is_refused():
    model = tiny_model("AS", mixer_options={"S": {"window": 4}}).train()
    with pytest.raises(ValueError, match="full-attention KV caches"):
        speculative_generate(model, torch.tensor([[1, 2, 3]]), 5, skip=CLaSp(1))
    assert model.training, "the model's mode is restored"
