"""Argument checks shared by every public entry point: one message format, the argument always named."""

from __future__ import annotations

import math
import numbers
import operator

import torch


def check_int(name: str, value, minimum: int = 1, optional: bool = False) -> None:
    """`value` must be an int >= minimum (bool refused), or None when optional; ValueError names `name`."""
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        allowed = f"an int >= {minimum}" + (" or None" if optional else "")
        raise ValueError(f"{name} must be {allowed}, got {value!r}")


def as_index(value) -> int | None:
    """An integer-like value (int, NumPy integer, one-element torch integer tensor) as an int; None for
    anything else, bools included."""
    if isinstance(value, bool) or (isinstance(value, torch.Tensor) and value.dtype == torch.bool):
        return None
    try:
        return operator.index(value)
    except TypeError:
        return None


def check_number(name: str, value, minimum: float = 0.0, inclusive: bool = True) -> None:
    """`value` must be a real number >= minimum (> minimum when not inclusive); bool and NaN refused."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and not math.isnan(value)
    if not ok or value < minimum or (not inclusive and value == minimum):
        raise ValueError(f"{name} must be a number {'>=' if inclusive else '>'} {minimum:g}, got {value!r}")


def check_token_ids(name: str, ids, ndim: int, vocab_size: int | None = None) -> None:
    """`ids` must be a non-empty torch.long tensor of `ndim` dimensions (1: a token stream, 2: (batch,
    seq_len)) holding ids in 0..vocab_size-1 (when given). TypeError for a non-tensor, else ValueError."""
    desc = f"{'1-D' if ndim == 1 else '2-D (batch, seq_len)'} torch.long tensor of token ids"
    if not isinstance(ids, torch.Tensor):
        raise TypeError(f"{name} must be a {desc}, got {type(ids).__name__}")
    if ids.dim() != ndim or ids.numel() == 0 or ids.dtype != torch.long:
        raise ValueError(f"{name} must be a non-empty {desc}, got shape {tuple(ids.shape)} and dtype "
                         f"{ids.dtype}")
    if vocab_size is not None:
        low, high = (value.item() for value in torch.aminmax(ids))
        if low < 0 or high >= vocab_size:
            raise ValueError(f"{name}: token id {low if low < 0 else high} is outside the vocabulary "
                             f"0..{vocab_size - 1}")
