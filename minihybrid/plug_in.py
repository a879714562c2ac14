"""Run a model on your own exercise functions: ``with plug_in(model, rms_norm=..., attention=...):``.

Inside the ``with``, every `RMSNorm` of the model computes ``rms_norm(x, weight, eps)`` and every attention
mixer (`layers.attention.Attention` and its subclasses) computes its full causal attention with
``attention(q, k, v)``: q (B, Hq, T, D), k and v (B, Hkv, T, D) -> (B, Hq, T, D), the signatures of
ex00.rms_norm and ex00.causal_gqa_attention. Cached decoding steps and windowed mixers keep the library's
path. The functions are plugged into these module instances only, and taken out again on exit, even when
the block raises:

    from exercises import ex00_foundations as ex00
    with plug_in(model, rms_norm=ex00.rms_norm, attention=ex00.causal_gqa_attention) as plugged:
        logits = model(ids)          # plugged == {"rms_norm": 2L + 1, "attention": L} for L attention blocks
"""

from __future__ import annotations

import contextlib
import types
from collections.abc import Callable, Iterator

import torch
from torch import nn

from minihybrid.layers.attention import Attention
from minihybrid.layers.norm import RMSNorm


def _checked(name: str, out, like: torch.Tensor) -> torch.Tensor:
    """``out`` if it is a tensor with the shape and dtype of ``like``; else an error naming ``name``."""
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"your {name} returned {type(out).__name__}, not a tensor")
    if out.shape != like.shape or out.dtype != like.dtype:
        raise ValueError(f"your {name} returned {tuple(out.shape)} {out.dtype}, "
                         f"expected {tuple(like.shape)} {like.dtype}")
    return out


def _norm_forward(rms_norm: Callable) -> Callable:
    def forward(self: RMSNorm, x: torch.Tensor) -> torch.Tensor:
        return _checked("rms_norm", rms_norm(x, self.weight, self.eps), x)

    return forward


def _attend(attention: Callable, library_attend: Callable) -> Callable:
    def attend(self: Attention, q, k, v, key_pos, start_pos):
        if key_pos is None and self.window is None and q.shape[2] == k.shape[2]:
            return _checked("attention", attention(q, k, v), q)
        return library_attend(q, k, v, key_pos, start_pos)

    return attend


_MISSING = object()


@contextlib.contextmanager
def plug_in(model: nn.Module, rms_norm: Callable | None = None,
            attention: Callable | None = None) -> Iterator[dict[str, int]]:
    """Within the block, ``model`` runs on ``rms_norm`` and / or ``attention`` (see the module docstring).

    Yields how many modules each given function was plugged into. Raises TypeError for a model that is not
    an nn.Module or a function that is not callable, ValueError when no function is given or the model has
    no module to plug a given one into.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    functions = {"rms_norm": rms_norm, "attention": attention}
    for name, function in functions.items():
        if function is not None and not callable(function):
            raise TypeError(f"{name} must be a function or None, got {type(function).__name__}")
    if rms_norm is None and attention is None:
        raise ValueError("nothing to plug in: pass rms_norm=..., attention=... or both")
    plugs = {"rms_norm": [], "attention": []}  # name -> (module, attribute, replacement) per module
    for module in model.modules():
        if rms_norm is not None and isinstance(module, RMSNorm):
            plugs["rms_norm"].append((module, "forward", _norm_forward(rms_norm)))
        if attention is not None and isinstance(module, Attention):
            plugs["attention"].append((module, "_attend", _attend(attention, module._attend)))
    for name, kind in (("rms_norm", "RMSNorm"), ("attention", "attention mixer")):
        if functions[name] is not None and not plugs[name]:
            raise ValueError(f"{type(model).__name__} has no {kind} to plug {name} into")
    saved = []  # (module, attribute, what the instance itself held before)
    try:
        for module, attribute, replacement in (plug for group in plugs.values() for plug in group):
            saved.append((module, attribute, vars(module).get(attribute, _MISSING)))
            setattr(module, attribute, types.MethodType(replacement, module))
        yield {name: len(group) for name, group in plugs.items() if group}
    finally:
        for module, attribute, before in reversed(saved):
            if before is _MISSING:
                delattr(module, attribute)
            else:
                setattr(module, attribute, before)
