"""Several linear layers applied to one input, as one matmul where their weights are stored together.

A decode step multiplies one row of x by q_proj, k_proj and v_proj (and by an FFN's gate and up): each call
pays a kernel launch and its Python, which for SmolLM2's small matrices costs as much as the arithmetic. A
layer names the linears that read the same input in ``FUSABLE``; a linear type that can run several of its
own as one call (``compress.QuantLinear``, once ``compress.fuse_projections`` stored them together) has a
``project_many(x, linears)`` method returning their outputs, or None when it cannot this time.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def project(x: torch.Tensor, linears: Sequence[nn.Module]) -> list[torch.Tensor]:
    """[linear(x) for linear in linears]: x (..., K) -> one (..., N_i) per linear, in one call when the first
    linear's type can do that (the outputs may then be views into one (..., sum N_i) tensor)."""
    many = getattr(linears[0], "project_many", None)
    outs = many(x, linears) if many is not None else None
    return list(outs) if outs is not None else [linear(x) for linear in linears]
