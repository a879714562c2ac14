"""Pruning: zero the least important weights of every linear in the blocks (as locuslab/wanda, prune.py).

Scores of W (N outputs, K inputs), compared within each output row:
    magnitude  S_ij = |W_ij|
    Wanda      S_ij = |W_ij| ||X_j||, X_j input feature j over all calibration tokens. With H = mean of
               2 x x^T (calibrate.py), ||X_j|| is proportional to sqrt(H_jj), and a per-linear constant
               does not change which weights a row drops, so S_ij = |W_ij| sqrt(H_jj) here.
Masks (True = keep):
    unstructured  the round(sparsity * K) lowest scores of each row are zeroed
    2:4           the 2 lowest scores of every 4 consecutive inputs of a row are zeroed (50%; sparse tensor
                  cores run this pattern at up to 2x)
The embedding and the tied LM head are left dense, as in the Wanda reference. Pruned weights stay float:
the zeros are written into each nn.Linear's weight.
"""

from __future__ import annotations

import numbers

import torch
from torch import nn

from minihybrid.compress.calibrate import for_each_block
from minihybrid.compress.modules import linear_names

METHODS = ("magnitude", "wanda")


def magnitude_scores(w: torch.Tensor) -> torch.Tensor:
    """|W| (N, K) float32."""
    return w.detach().abs().float()


def wanda_scores(w: torch.Tensor, hessian: torch.Tensor) -> torch.Tensor:
    """|W_ij| sqrt(H_jj) (N, K) float32 for W (N, K) and its inputs' H (K, K): Wanda's |W| ||X_j|| up to a
    constant factor.

    Exercise twin: ex05.wanda_scores (from the inputs X themselves: |W| ||X_j||)."""
    if hessian.shape != (w.shape[-1], w.shape[-1]):
        raise ValueError(f"need H ({w.shape[-1]}, {w.shape[-1]}) for W {tuple(w.shape)}, "
                         f"got {tuple(hessian.shape)}")
    return magnitude_scores(w) * hessian.diagonal().float().clamp(min=0).sqrt()


def check_fraction(sparsity) -> None:
    """An unstructured sparsity must be a real number in [0, 1) (bool and NaN refused)."""
    if isinstance(sparsity, bool) or not isinstance(sparsity, numbers.Real) or not 0 <= sparsity < 1:
        raise ValueError(f"sparsity must be a number in [0, 1) (or '2:4' for a model), got {sparsity!r}")


def unstructured_mask(scores: torch.Tensor, sparsity: float) -> torch.Tensor:
    """Keep-mask (N, K) bool: each row loses exactly round(sparsity * K) entries, its lowest scores."""
    check_fraction(sparsity)
    drop = round(sparsity * scores.shape[-1])
    lowest = scores.argsort(dim=-1, stable=True)[:, :drop]
    return torch.ones_like(scores, dtype=torch.bool).scatter_(-1, lowest, False)


def two_four_mask(scores: torch.Tensor) -> torch.Tensor:
    """Keep-mask (N, K) bool: in every 4 consecutive inputs of a row, the 2 highest scores are kept (on a tie,
    the earlier input).

    Exercise twin: ex05.two_four_mask."""
    n, k = scores.shape
    if k % 4:
        raise ValueError(f"2:4 sparsity needs the inputs K={k} to be a multiple of 4")
    quads = scores.reshape(n, k // 4, 4)
    top = quads.argsort(dim=-1, descending=True, stable=True)[..., :2]
    return torch.zeros_like(quads, dtype=torch.bool).scatter_(-1, top, True).reshape(n, k)


def _prune_linear(linear: nn.Linear, scores: torch.Tensor, sparsity: float | str) -> None:
    """Zero the weight (N, K) of `linear` in place where the mask of scores (N, K) drops it."""
    mask = two_four_mask(scores) if sparsity == "2:4" else unstructured_mask(scores, sparsity)
    linear.weight.mul_(mask.to(linear.weight.dtype))


def _block_linears(block: nn.Module) -> dict[str, nn.Linear]:
    """{name within the block: module} of the block's nn.Linear layers."""
    return {name: block.get_submodule(name) for name in linear_names(block)}


@torch.no_grad()
def prune_model(model: nn.Module, method: str, sparsity: float | str, windows: torch.Tensor | None = None,
                batch_size: int = 8) -> nn.Module:
    """Prune every nn.Linear in a HybridLM's blocks in place; returns the model.

    method: "magnitude" or "wanda"; sparsity: a float in [0, 1) (unstructured, per output row) or "2:4".
    windows: (n, T) calibration token ids, needed by "wanda" (walked block by block, so each block's
    input norms come from the already-pruned blocks before it)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if sparsity != "2:4":
        check_fraction(sparsity)
    if method == "magnitude":
        for block in model.blocks:
            for linear in _block_linears(block).values():
                _prune_linear(linear, magnitude_scores(linear.weight), sparsity)
        return model
    if windows is None:
        raise ValueError("wanda pruning needs calibration windows (n, T) token ids")

    def prune_block(index: int, block: nn.Module, hessians: dict[str, torch.Tensor]) -> None:
        for name, linear in _block_linears(block).items():
            _prune_linear(linear, wanda_scores(linear.weight, hessians[name]), sparsity)

    for_each_block(model, windows, prune_block, batch_size)
    return model


def sparsity_report(model: nn.Module) -> list[dict]:
    """One row per nn.Linear of the model: name, shape (N, K), zeros (exact zero weights) and sparsity."""
    rows = []
    for name in linear_names(model):
        weight = model.get_submodule(name).weight
        zeros = int((weight == 0).sum())
        rows.append({"name": name, "shape": tuple(weight.shape), "zeros": zeros,
                     "sparsity": zeros / weight.numel()})
    return rows
