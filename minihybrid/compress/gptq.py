"""GPTQ (Frantar et al. 2022): quantize a weight column by column, each rounding error compensated by the
columns not yet quantized, weighted by the inputs' Hessian (as IST-DASLab/gptq, gptq.py, does it).

Symbols: W (N outputs, K inputs) the weight; X the linear's calibration inputs; H = mean of 2 x x^T (K, K),
the Hessian of the layer's output error ||X W^T - X Wq^T||^2 with respect to a row of W.
    1. dead inputs (H[i, i] = 0, never active): H[i, i] = 1 and W[:, i] = 0
    2. damping: H += lambda I with lambda = damp * mean(diag H), times 10 on each failed Cholesky
    3. U = the upper Cholesky factor of H^-1 (H^-1 = U^T U): row i of U holds, scaled by U[i, i], how the
       remaining columns i.. should move when column i is fixed
    4. for each column i: if i starts a group, fit the group's scale s and offset m (fit_groups) to its
       CURRENT columns (already moved by earlier errors); q = s * clamp(round((w_i - m) / s)) + m;
       err = (w_i - q) / U[i, i]; W[:, i:] -= err U[i, i:]
Step 4 runs in blocks of `block_columns` columns: inside a block the updates are applied column by column,
and the block's errors reach the later columns in one matmul at its end. One difference from the reference
code: it fits a group that starts inside a block on W, which lacks the updates made earlier in that block;
here the fit sees them (the two differ only for groups smaller than a block). Per-channel schemes fit s and m
once, on the whole W after step 1. With H = I, U is diagonal, nothing propagates, and GPTQ is RTN.

gptq_model quantizes a HybridLM this way block by block (`calibrate.for_each_block`), so each block's H
comes from the outputs of the already-quantized blocks before it, and finally the LM head from the final
norm's outputs (a tied embedding then reads the quantized head).
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from minihybrid.checks import check_int, check_number
from minihybrid.compress.calibrate import InputHessian, for_each_block
from minihybrid.compress.modules import quantize_model
from minihybrid.compress.quantize import QuantizedWeight, QuantScheme, fit_groups, quantize_codes
from minihybrid.kernels.quant_matmul.reference import pack_codes

DAMP_TRIES = 5  # damping damp, 10 damp, ... before giving up


def _inverse_cholesky(hessian: torch.Tensor, damp: float) -> torch.Tensor:
    """U (K, K), the upper Cholesky factor of (H + lambda I)^-1, lambda = damp * mean(diag H) raised 10x
    (with a warning) while H + lambda I is not numerically positive definite."""
    level = damp * hessian.diagonal().mean().item()
    eye = torch.eye(hessian.shape[0], dtype=hessian.dtype, device=hessian.device)
    for _ in range(DAMP_TRIES):
        lower, info = torch.linalg.cholesky_ex(hessian + level * eye)
        if not info:
            upper, info = torch.linalg.cholesky_ex(torch.cholesky_inverse(lower), upper=True)
            if not info:
                return upper
        warnings.warn(f"GPTQ: the Hessian is not positive definite with damping {level:.3g}; retrying with "
                      f"{10 * level:.3g}", RuntimeWarning, stacklevel=3)
        level *= 10
    raise ValueError(f"GPTQ: the Hessian is not positive definite even with damping {level / 10:.3g} "
                     f"({DAMP_TRIES} tries); is it a Hessian 2 X^T X / n of real inputs?")


@torch.no_grad()
def gptq_quantize(w: torch.Tensor, hessian: torch.Tensor, scheme: QuantScheme, block_columns: int = 128,
                  damp: float = 0.01) -> QuantizedWeight:
    """W (N, K) quantized under `scheme` by GPTQ with the inputs' Hessian H (K, K); neither is modified.

    block_columns must be a multiple of the group size (so no group straddles two blocks).

    Exercise twin: ex05.gptq_block (the inner loop over one block of one group)."""
    if w.dim() != 2 or hessian.shape != (w.shape[1], w.shape[1]):
        raise ValueError(f"need W (N, K) and H (K, K), got {tuple(w.shape)} and {tuple(hessian.shape)}")
    if not torch.isfinite(hessian).all() or (hessian.diagonal() < 0).any():
        raise ValueError("the Hessian must be finite with a non-negative diagonal")
    check_int("block_columns", block_columns)
    check_number("damp", damp, inclusive=False)
    n, k = w.shape
    group = scheme.group_of(k)
    if group < k and block_columns % group:
        raise ValueError(f"block_columns={block_columns} must be a multiple of the group size {group}")
    w, h = w.detach().float().clone(), hessian.detach().float().clone()
    dead = h.diagonal() == 0
    h.diagonal()[dead] = 1
    w[:, dead] = 0
    u = _inverse_cholesky(h, damp)
    scales, mins = fit_groups(w, scheme)  # final if per-channel; groups are refitted as they start
    codes = torch.empty(n, k, dtype=torch.uint8, device=w.device)
    for start in range(0, k, block_columns):
        end = min(start + block_columns, k)
        block, u_block = w[:, start:end].clone(), u[start:end, start:end]
        errors = torch.empty_like(block)
        for j in range(end - start):
            g = (start + j) // group
            if group < k and (start + j) % group == 0:
                scales[:, g:g + 1], mins[:, g:g + 1] = fit_groups(block[:, j:j + group], scheme)
            col = quantize_codes(block[:, j:j + 1], scales[:, g:g + 1], mins[:, g:g + 1], scheme.bits)[:, 0]
            codes[:, start + j] = col
            errors[:, j] = (block[:, j] - (col.float() * scales[:, g] + mins[:, g])) / u_block[j, j]
            block[:, j:].addr_(errors[:, j], u_block[j, j:], alpha=-1)
        w[:, end:] -= errors @ u[start:end, end:]
    return QuantizedWeight(pack_codes(codes, scheme.bits), scales, mins, scheme)


@torch.no_grad()
def gptq_model(model: nn.Module, windows: torch.Tensor, scheme: QuantScheme, batch_size: int = 8,
               block_columns: int = 128, damp: float = 0.01) -> nn.Module:
    """Quantize a HybridLM in place by GPTQ, calibrated on windows (n, T) token ids; returns the model.

    Every nn.Linear of every block becomes a QuantLinear (block by block, each calibrated on the outputs of
    the quantized blocks before it), then the LM head, from the final norm's outputs. Each weight gets
    scheme.for_inputs(its inputs), as in quantize_model."""

    def quantize(weight: torch.Tensor, hessian: torch.Tensor) -> QuantizedWeight:
        return gptq_quantize(weight, hessian, scheme.for_inputs(weight.shape[1]), block_columns, damp)

    def quantize_block(index: int, block: nn.Module, hessians: dict[str, torch.Tensor]) -> None:
        weights = {name: quantize(block.get_submodule(name).weight, h) for name, h in hessians.items()}
        quantize_model(block, scheme, weights=weights)

    hidden = for_each_block(model, windows, quantize_block, batch_size)
    head_inputs = InputHessian()
    for x in hidden.split(batch_size):
        head_inputs.add(model.norm(x))
    head = quantize(model.head.weight, head_inputs.value())
    return quantize_model(model, scheme, weights={"head": head}, include=lambda name: name == "head")
