"""Run a model on your own exercise functions: ``with plug_in(model, rms_norm=..., attention=...):``.

Inside the ``with``, the model's modules call the functions you pass instead of the library's:

    rms_norm(x, weight, eps)                   every RMSNorm (ex00.rms_norm)
    attention(q, k, v)                         full causal attention of every "A"/"S" mixer: q (B, Hq, T, D),
                                               k, v (B, Hkv, T, D) -> (B, Hq, T, D); ex00.causal_gqa_attention
    ssm_step(state, x, dt, A, B, C)            every cached one-token SSM step, "M" or "H" (ex01.ssm_step)
    ssd_chunked(x, dt, A, B, C, state, Q)      every SSM scan over several tokens (ex01.ssd_chunked)
    fuse_branches(a, s, wa, ws, fusion, eps)   every intra-layer hybrid's fusion, "H" (ex01.fuse_branches)
    taylor_linear_attention(q, k, v)           every Taylor mixer over a whole sequence, "T" (ex02)
    non_approx_scores(q, k)                    every non-approximate mixer's same-token scores, "N" (ex02)
    non_approx_attention(s, v)                 every non-approximate mixer over a whole sequence, "N" (ex02)
    block_scores(q, kc, q_pos, **sizes)        every switchable mixer's block scores when sparse, "B" (ex03)
    select_blocks(scores, q_pos, **sizes)      every switchable mixer's block choice when sparse, "B" (ex03)
    block_sparse_attention(q, k, v, blocks, block_size)   every switchable mixer's sparse attention (ex03)

Cached attention decoding steps and windowed attention keep the library's path. The functions are plugged
into these module instances only, and taken out again on exit, even when the block raises:

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
from minihybrid.layers.intra_hybrid import IntraHybrid
from minihybrid.layers.non_approx import NonApproxAttention
from minihybrid.layers.norm import RMSNorm
from minihybrid.layers.ssm import Mamba2
from minihybrid.layers.switchable import SwitchableAttention
from minihybrid.layers.taylor import TaylorAttention


def _checked(name: str, out, *likes: torch.Tensor, shape=None):
    """``out`` if it is a tensor (a tuple of tensors, one per ``like``) with the like's shape and dtype;
    else an error naming ``name``. ``shape`` overrides the expected shape of a single tensor."""
    outs = out if len(likes) > 1 else (out,)
    if len(likes) > 1 and not (isinstance(out, tuple) and len(out) == len(likes)):
        raise TypeError(f"your {name} must return a tuple of {len(likes)} tensors, got {type(out).__name__}")
    for got, like in zip(outs, likes):
        if not isinstance(got, torch.Tensor):
            raise TypeError(f"your {name} returned {type(got).__name__}, not a tensor")
        expected = like.shape if shape is None else shape
        if got.shape != expected or got.dtype != like.dtype:
            raise ValueError(f"your {name} returned {tuple(got.shape)} {got.dtype}, "
                             f"expected {tuple(expected)} {like.dtype}")
    return out


def _norm(rms_norm: Callable, module: RMSNorm) -> Callable:
    def forward(self: RMSNorm, x: torch.Tensor) -> torch.Tensor:
        return _checked("rms_norm", rms_norm(x, self.weight, self.eps), x)

    return forward


def _attend(attention: Callable, module: Attention) -> Callable:
    library_attend = module._attend

    def attend(self: Attention, q, k, v, key_pos, start_pos):
        if key_pos is None and self.window is None and q.shape[2] == k.shape[2]:
            return _checked("attention", attention(q, k, v), q)
        return library_attend(q, k, v, key_pos, start_pos)

    return attend


def _step(ssm_step: Callable, module: Mamba2) -> Callable:
    def step(self: Mamba2, state, x, dt, A, B, C):
        return _checked("ssm_step", ssm_step(state, x, dt, A, B, C), x, state)

    return step


def _sequence(ssd_chunked: Callable, module: Mamba2) -> Callable:
    def sequence(self: Mamba2, x, dt, A, B, C, initial_state):
        out = ssd_chunked(x, dt, A, B, C, initial_state, self.chunk_size)
        like_state = x.new_empty(x.shape[0], x.shape[2], x.shape[3], B.shape[-1])
        return _checked("ssd_chunked", out, x, like_state)

    return sequence


def _fuse(fuse_branches: Callable, module: IntraHybrid) -> Callable:
    def fuse(self: IntraHybrid, a, s):
        width = 2 * self.width if self.fusion == "concat" else self.width
        out = fuse_branches(a, s, self.attn_norm, self.ssm_norm, self.fusion, self.eps)
        return _checked("fuse_branches", out, a, shape=(*a.shape[:-1], width))

    return fuse


def _plain(name: str, function: Callable, like_arg: int, shape) -> Callable:
    """A method calling `function` on its arguments, checked like its argument `like_arg` (shape(args) if
    given)."""
    def method(self, *args):
        return _checked(name, function(*args), args[like_arg], shape=shape(args) if shape else None)

    return method


def _taylor(function: Callable, module: TaylorAttention) -> Callable:
    return _plain("taylor_linear_attention", function, 2, None)  # o has v's shape


def _scores(function: Callable, module: NonApproxAttention) -> Callable:
    return _plain("non_approx_scores", function, 0, lambda a: a[0].shape[:-1])


def _average(function: Callable, module: NonApproxAttention) -> Callable:
    return _plain("non_approx_attention", function, 1, None)


def _block_scores(function: Callable, module: SwitchableAttention) -> Callable:
    def score(self, q, kc, q_pos, **sizes):
        shape = (q.shape[0], kc.shape[1], q.shape[2], sizes["n_blocks"])
        return _checked("block_scores", function(q, kc, q_pos, **sizes), q.float(), shape=shape)

    return score


def _select_blocks(function: Callable, module: SwitchableAttention) -> Callable:
    def choose(self, scores, q_pos, **sizes):
        blocks = function(scores, q_pos, **sizes)
        tensor = isinstance(blocks, torch.Tensor) and blocks.dtype in (torch.int32, torch.int64)
        if not (tensor and blocks.dim() == 4 and blocks.shape[:3] == scores.shape[:3]):
            raise ValueError(f"your select_blocks must return an int32/int64 (B, Hkv, Tq, S) tensor with "
                             f"(B, Hkv, Tq) = {tuple(scores.shape[:3])}")
        return blocks.to(torch.int32)

    return choose


def _block_sparse(function: Callable, module: SwitchableAttention) -> Callable:
    def attend_blocks(self, q, k, v, blocks):
        return _checked("block_sparse_attention", function(q, k, v, blocks, self.sizes["block_size"]), q)

    return attend_blocks


# name -> (the module class it goes into, the attribute it replaces, the replacement's builder)
PLUGS = {
    "rms_norm": (RMSNorm, "forward", _norm),
    "attention": (Attention, "_attend", _attend),
    "ssm_step": (Mamba2, "_step", _step),
    "ssd_chunked": (Mamba2, "_sequence", _sequence),
    "fuse_branches": (IntraHybrid, "_fuse", _fuse),
    "taylor_linear_attention": (TaylorAttention, "_sequence", _taylor),
    "non_approx_scores": (NonApproxAttention, "_score", _scores),
    "non_approx_attention": (NonApproxAttention, "_average", _average),
    "block_scores": (SwitchableAttention, "_score", _block_scores),
    "select_blocks": (SwitchableAttention, "_choose", _select_blocks),
    "block_sparse_attention": (SwitchableAttention, "_attend_blocks", _block_sparse),
}
_MISSING = object()


@contextlib.contextmanager
def plug_in(model: nn.Module, **functions: Callable) -> Iterator[dict[str, int]]:
    """Within the block, ``model`` runs on the given functions (keywords: the names in PLUGS; see the module
    docstring).

    Yields how many modules each given function was plugged into. Raises TypeError for a model that is not
    an nn.Module, an unknown keyword or a function that is not callable, ValueError when no function is given
    or the model has no module to plug a given one into.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    for name, function in functions.items():
        if name not in PLUGS:
            raise TypeError(f"cannot plug in {name!r}; pluggable: {', '.join(PLUGS)}")
        if function is not None and not callable(function):
            raise TypeError(f"{name} must be a function or None, got {type(function).__name__}")
    functions = {name: function for name, function in functions.items() if function is not None}
    if not functions:
        raise ValueError(f"nothing to plug in: pass one or more of {', '.join(f'{n}=...' for n in PLUGS)}")
    plugs = {name: [] for name in functions}  # name -> (module, attribute, replacement) per module
    for module in model.modules():
        for name, function in functions.items():
            cls, attribute, build = PLUGS[name]
            if isinstance(module, cls):
                plugs[name].append((module, attribute, build(function, module)))
    for name, group in plugs.items():
        if not group:
            raise ValueError(f"{type(model).__name__} has no {PLUGS[name][0].__name__} to plug {name} into")
    saved = []  # (module, attribute, what the instance itself held before)
    try:
        for module, attribute, replacement in (plug for group in plugs.values() for plug in group):
            saved.append((module, attribute, vars(module).get(attribute, _MISSING)))
            setattr(module, attribute, types.MethodType(replacement, module))
        yield {name: len(group) for name, group in plugs.items()}
    finally:
        for module, attribute, before in reversed(saved):
            if before is _MISSING:
                delattr(module, attribute)
            else:
                setattr(module, attribute, before)
