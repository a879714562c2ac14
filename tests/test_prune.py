"""Pruning: masks (exact zeros per row, 2:4), Wanda versus magnitude, whole tiny models, the report."""

import pytest
import torch
from torch import nn

from minihybrid import HybridLM, ModelConfig
from minihybrid.compress.prune import (
    magnitude_scores,
    prune_model,
    sparsity_report,
    two_four_mask,
    unstructured_mask,
    wanda_scores,
)


def tiny_model() -> HybridLM:
    torch.manual_seed(0)
    config = ModelConfig(vocab_size=61, d_model=32, n_heads=4, n_kv_heads=2, max_seq_len=32, pattern="AA")
    return HybridLM(config).eval()


def windows() -> torch.Tensor:
    return torch.randint(61, (6, 16), generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("sparsity,k,zeros", [(0.5, 64, 32), (0.3, 10, 3), (0.25, 10, 2), (0.0, 8, 0),
                                              (0.99, 64, 63)])
def test_unstructured_mask_drops_exactly_the_lowest_per_row(sparsity, k, zeros):
    scores = torch.rand(7, k, generator=torch.Generator().manual_seed(0))
    keep = unstructured_mask(scores, sparsity)
    assert keep.dtype == torch.bool and ((~keep).sum(1) == zeros).all()
    for row, kept in zip(scores, keep):  # every dropped score is below every kept one
        if zeros:
            assert row[~kept].max() < row[kept].min()


def test_two_four_keeps_the_two_largest_of_every_four():
    scores = torch.rand(5, 32, generator=torch.Generator().manual_seed(0))
    keep = two_four_mask(scores)
    quads, kept = scores.reshape(5, 8, 4), keep.reshape(5, 8, 4)
    assert (kept.sum(-1) == 2).all()
    assert (quads.masked_fill(~kept, 2).amin(-1) > quads.masked_fill(kept, -1).amax(-1)).all()


def test_wanda_keeps_the_large_activation_column():
    """Row weights shrink slowly with the column, but column 7's inputs are 100x larger than the rest."""
    w = torch.linspace(1.0, 0.9, 8).repeat(3, 1)
    x = torch.ones(100, 8)
    x[:, 7] = 100.0
    h = 2 * x.T @ x / x.shape[0]
    torch.testing.assert_close(wanda_scores(w, h), w.abs() * x.norm(dim=0) * (2 / 100) ** 0.5)
    by_magnitude = unstructured_mask(magnitude_scores(w), 0.5)
    by_wanda = unstructured_mask(wanda_scores(w, h), 0.5)
    assert not by_magnitude[:, 7].any() and by_wanda[:, 7].all()
    assert not torch.equal(by_magnitude, by_wanda)


@pytest.mark.parametrize("method", ["magnitude", "wanda"])
@pytest.mark.parametrize("sparsity", [0.5, "2:4"])
def test_prune_model_prunes_the_blocks_only(method, sparsity):
    model = tiny_model()
    embed = model.embed.weight.clone()
    with torch.no_grad():
        before = model(windows())
    pruned = prune_model(model, method, sparsity, windows=windows() if method == "wanda" else None)
    assert pruned is model
    rows = sparsity_report(model)
    assert [r["name"] for r in rows][-1] == "head" and len(rows) == 2 * 7 + 1
    for row in rows[:-1]:
        n, k = row["shape"]
        assert row["zeros"] == n * k // 2 and row["sparsity"] == 0.5
        weight = model.get_submodule(row["name"]).weight
        assert ((weight == 0).sum(1) == k // 2).all()  # per output row
        if sparsity == "2:4":
            assert ((weight.reshape(n, k // 4, 4) == 0).sum(-1) == 2).all()
    assert rows[-1]["zeros"] == 0 and torch.equal(model.embed.weight, embed)
    with torch.no_grad():
        assert torch.isfinite(model(windows())).all() and not torch.allclose(model(windows()), before)


def test_wanda_and_magnitude_models_differ():
    magnitude = prune_model(tiny_model(), "magnitude", 0.5)
    wanda = prune_model(tiny_model(), "wanda", 0.5, windows=windows())
    masks = [[(m.weight == 0) for m in model.modules() if isinstance(m, nn.Linear)][:-1]
             for model in (magnitude, wanda)]
    assert any(not torch.equal(a, b) for a, b in zip(*masks))


def test_report_counts():
    model = tiny_model()
    with torch.no_grad():
        model.blocks[0].ffn.up.weight[:3] = 0
    row = next(r for r in sparsity_report(model) if r["name"] == "blocks.0.ffn.up")
    n, k = model.blocks[0].ffn.up.weight.shape
    assert row == {"name": "blocks.0.ffn.up", "shape": (n, k), "zeros": 3 * k, "sparsity": 3 / n}


@pytest.mark.parametrize("sparsity", [1.0, -0.1, 1.5, float("nan"), True, "3:4", None])
def test_bad_sparsity(sparsity):
    with pytest.raises(ValueError, match="sparsity must be a number in"):
        prune_model(tiny_model(), "magnitude", sparsity)
    if not isinstance(sparsity, str):
        with pytest.raises(ValueError, match="sparsity must be a number in"):
            unstructured_mask(torch.rand(2, 8), sparsity)


def test_bad_arguments():
    with pytest.raises(ValueError, match="multiple of 4"):
        two_four_mask(torch.rand(3, 10))
    with pytest.raises(ValueError, match="wanda pruning needs calibration windows"):
        prune_model(tiny_model(), "wanda", 0.5)
    with pytest.raises(ValueError, match="method must be one of"):
        prune_model(tiny_model(), "random", 0.5)
    with pytest.raises(ValueError, match=r"need H \(8, 8\)"):
        wanda_scores(torch.rand(3, 8), torch.eye(4))
    model = tiny_model()
    weights = [p.clone() for p in model.parameters()]
    with pytest.raises(ValueError):
        prune_model(model, "magnitude", 1.0)
    assert all(torch.equal(a, b) for a, b in zip(weights, model.parameters()))  # checked before any change
