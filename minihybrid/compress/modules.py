"""Quantized layers that swap into any HybridLM, and the model's true weight memory.

QuantLinear replaces an nn.Linear: it keeps a QuantizedWeight (packed codes, scales, mins) as buffers and
multiplies through ``kernels/quant_matmul`` without ever materialising the float weight. QuantEmbedding
replaces a tied embedding: it looks rows up in the LM head's quantized weight, so the tied table is stored
once, in low bits (it is 21% of SmolLM2's weights). ``fuse_projections`` stores the linears that read one
input (q, k, v; gate, up) as one weight, so a decode step makes one kernel call per group: on SmolLM2 int4
that took a decode step from 39.6 to 32.5 ms (the calls' launch and Python cost more than their arithmetic).
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Callable, Mapping, Sequence

import torch
from torch import nn

from minihybrid.compress.quantize import QuantizedWeight, QuantScheme, quantize_weight
from minihybrid.kernels.dispatch import needs_grad
from minihybrid.kernels.quant_matmul import check_weight, quant_matmul
from minihybrid.kernels.quant_matmul.cpu import quant_matmul_arrays
from minihybrid.kernels.quant_matmul.reference import unpack_codes


class QuantLinear(nn.Module):
    """y = x W^T for x (..., K) -> (..., N), with W (N, K) stored quantized (no bias)."""

    def __init__(self, weight: QuantizedWeight):
        super().__init__()
        self.scheme = weight.scheme
        self.out_features, self.in_features = weight.shape
        self.group_size = weight.group_size
        check_weight(weight.packed, weight.scales, weight.mins, self.scheme.bits, self.group_size)
        if weight.packed.device.type != "cpu" or not all(
                t.is_contiguous() for t in (weight.packed, weight.scales, weight.mins)):
            raise ValueError("a QuantLinear is built from contiguous CPU tensors (move the module after)")
        self.register_buffer("packed", weight.packed)
        self.register_buffer("scales", weight.scales)
        self.register_buffer("mins", weight.mins)

    @classmethod
    def empty(cls, out_features: int, in_features: int, scheme: QuantScheme) -> QuantLinear:
        """A QuantLinear of this shape and scheme with zero codes, to load a saved state into."""
        groups = in_features // scheme.group_of(in_features)
        packed = torch.zeros(out_features, in_features * scheme.bits // 8, dtype=torch.uint8)
        zeros = torch.zeros(out_features, groups)
        return cls(QuantizedWeight(packed, zeros, zeros.clone(), scheme))

    @property
    def weight(self) -> QuantizedWeight:
        return QuantizedWeight(self.packed, self.scales, self.mins, self.scheme)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (..., K) -> (..., N). A contiguous float32 CPU x without autograd goes straight to the Numba
        kernel (decoding makes ~200 of these calls per token, so the op's checks are paid once, here at
        construction); anything else goes through ``quant_matmul`` and its "auto" backend."""
        if self._runs_kernel(x):
            return self._kernel(x, self._stored(), self.out_features)
        return quant_matmul(x, self.packed, self.scales, self.mins, bits=self.scheme.bits,
                            group_size=self.group_size)

    def project_many(self, x: torch.Tensor, linears) -> list[torch.Tensor] | None:
        """[linear(x) for linear in linears] as one kernel call over their rows stored together (by
        ``fuse_projections``), or None when they are not (or x, or a hook on one of them, rules it out)."""
        rows = self.__dict__.get("_fused")
        if rows is None or not self._runs_kernel(x) or not rows.holds(linears):
            return None
        return self._kernel(x, rows.arrays(), rows.total).split(rows.sizes, dim=-1)

    def _runs_kernel(self, x: torch.Tensor) -> bool:
        """True for contiguous float32 CPU x (..., K) without autograd and with a row (the kernel's checks,
        made here once per call)."""
        return (x.dtype == torch.float32 and x.device.type == "cpu" and x.dim() > 0
                and x.shape[-1] == self.in_features and x.numel() and x.is_contiguous() and not needs_grad(x))

    def _kernel(self, x: torch.Tensor, arrays, rows: int) -> torch.Tensor:
        out = x.new_empty(*x.shape[:-1], rows)
        return quant_matmul_arrays(x, *arrays, out, self.scheme.bits, self.group_size)

    def _stored(self) -> tuple:
        """(packed, scales, mins) as numpy views, made once: a fresh view per call costs about as much as
        the arithmetic of a small decode GEMV."""
        return numpy_views(self._buffers["packed"], self._buffers["scales"], self._buffers["mins"],
                           cache=self.__dict__)

    def __getstate__(self):
        return {k: v for k, v in super().__getstate__().items() if k != _NUMPY}  # views: remade on use

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, {self.scheme.name}"


_NUMPY = "_numpy"  # the __dict__ key of cached numpy views: (data pointers, views)


def numpy_views(*tensors: torch.Tensor, cache: dict) -> tuple:
    """The tensors' numpy views, cached in `cache` and remade when a tensor moved (``.to``, a copy)."""
    pointers = tuple(t.data_ptr() for t in tensors)
    cached = cache.get(_NUMPY)
    if cached is None or cached[0] != pointers:
        cached = cache[_NUMPY] = (pointers, tuple(t.numpy() for t in tensors))
    return cached[1]


class FusedRows:
    """The weights of QuantLinears with one input and one scheme, stored as one: each linear's packed, scales
    and mins buffers are row blocks (views) of the stacked tensors, so one kernel call computes them all."""

    def __init__(self, linears: Sequence[QuantLinear]):
        self.sizes = [m.out_features for m in linears]
        self.total = sum(self.sizes)
        self.stacked = {name: torch.cat([m._buffers[name] for m in linears]) for name in _BUFFERS}
        self.views = []
        start = 0
        for m in linears:
            views = {name: t[start:start + m.out_features] for name, t in self.stacked.items()}
            for name, view in views.items():
                setattr(m, name, view)
            self.views.append(views)
            start += m.out_features
        linears[0].__dict__["_fused"] = self

    def holds(self, linears: Sequence[QuantLinear]) -> bool:
        """True when these linears' buffers are still this stack's views, in order, with no hooks to call."""
        return len(linears) == len(self.views) and all(
            not (m._forward_hooks or m._forward_pre_hooks) and all(m._buffers.get(name) is view
                                                                   for name, view in views.items())
            for m, views in zip(linears, self.views))

    def arrays(self) -> tuple:
        """(packed, scales, mins) of the stack as numpy views."""
        return numpy_views(*(self.stacked[name] for name in _BUFFERS), cache=self.__dict__)

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k != _NUMPY}


_BUFFERS = ("packed", "scales", "mins")


class QuantEmbedding(nn.Module):
    """Token ids (...) -> rows (..., d) of a QuantLinear's weight (the tied LM head), dequantized on lookup.

    The head is held as a plain attribute, not a submodule, so its buffers appear once in the state dict."""

    def __init__(self, head: QuantLinear):
        super().__init__()
        self.__dict__["head"] = head
        self.num_embeddings, self.embedding_dim = head.out_features, head.in_features

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        head = self.head
        codes = unpack_codes(head.packed[idx], head.scheme.bits).float()
        groups = codes.unflatten(-1, (-1, head.group_size))
        rows = groups * head.scales[idx][..., None] + head.mins[idx][..., None]
        return rows.flatten(-2)


Weights = Mapping[str, QuantizedWeight]


def linear_names(model: nn.Module) -> list[str]:
    """Names of the model's nn.Linear modules, in order (the head last for a HybridLM)."""
    return [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]


def set_module(model: nn.Module, name: str, module: nn.Module) -> None:
    """Put `module` at the dotted path `name` inside `model` (replacing what is there)."""
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, module)


def quantize_model(model: nn.Module, scheme: QuantScheme, weights: Weights | None = None,
                   include: Callable[[str], bool] = lambda name: True) -> nn.Module:
    """Swap every nn.Linear whose name passes `include` for a QuantLinear, in place; returns the model.

    weights: already-quantized weights by module name (e.g. from GPTQ); the others are RTN-quantized, each
    with scheme.for_inputs(its inputs): a linear whose inputs do not split into the scheme's groups takes the
    largest smaller group size that fits, with a warning that counts them. A HybridLM whose head is tied to
    its embedding gets a QuantEmbedding reading the quantized head. Linears reading one input are stored
    together (``fuse_projections``)."""
    weights = weights or {}
    built, smaller = {}, Counter()
    for name in linear_names(model):  # all built before the first swap: a refused call changes nothing
        if not include(name):
            continue
        linear = model.get_submodule(name)
        shape = (linear.out_features, linear.in_features)
        if linear.bias is not None:
            raise ValueError(f"{name} has a bias; QuantLinear quantizes bias-free linears only")
        if name in weights and weights[name].shape != shape:
            raise ValueError(f"the weight given for {name} is {weights[name].shape}, the linear {shape}")
        own = scheme.for_inputs(linear.in_features)
        if own != scheme:
            smaller[own.name] += 1
        built[name] = QuantLinear(weights[name] if name in weights else quantize_weight(linear.weight, own))
    for name, module in built.items():
        set_module(model, name, module)
    if smaller:
        warnings.warn(f"{sum(smaller.values())} of {len(built)} linears take a smaller group than "
                      f"{scheme.name}, their inputs not splitting into {scheme.group_size}: "
                      + ", ".join(f"{n} x {count}" for n, count in smaller.items()), stacklevel=2)
    retie(model)
    return fuse_projections(model)


def fuse_projections(model: nn.Module) -> nn.Module:
    """Store each group of QuantLinears that a layer names in ``FUSABLE`` (attention's q, k, v; the FFN's
    gate and up) as one weight, so that decoding runs one kernel per group (``layers/projections.py``); in
    place, returns the model. A group with a float linear or mixed schemes is left as it is."""
    for module in model.modules():
        for names in getattr(module, "FUSABLE", ()):
            linears = [getattr(module, name) for name in names]
            if all(isinstance(m, QuantLinear) for m in linears) and len(
                    {(m.in_features, m.scheme, m.group_size) for m in linears}) == 1:
                FusedRows(linears)
    return model


def retie(model: nn.Module) -> None:
    """Point a tied HybridLM's embedding at its quantized head (after the head became a QuantLinear)."""
    config = getattr(model, "config", None)
    if getattr(config, "tie_embeddings", False) and isinstance(getattr(model, "head", None), QuantLinear):
        model.embed = QuantEmbedding(model.head)


def quantized_schemes(model: nn.Module) -> dict[str, QuantScheme]:
    """Module name -> scheme of every QuantLinear in the model."""
    return {name: m.scheme for name, m in model.named_modules() if isinstance(m, QuantLinear)}


def weight_bytes(model: nn.Module) -> int:
    """Bytes of the model's parameters and buffers, each storage counted once (tied weights share one)."""
    seen: dict[int, int] = {}
    for tensor in [*model.parameters(), *model.buffers()]:
        storage = tensor.untyped_storage()
        seen[storage.data_ptr()] = storage.nbytes()
    return sum(seen.values())
