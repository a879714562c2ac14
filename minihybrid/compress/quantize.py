"""Round-to-nearest (RTN) weight quantization: the scheme, the fitted groups and the stored weight.

A weight W (N outputs, K inputs) is cut into groups of `group_size` consecutive inputs per output row (one
group of K for per-channel quantization). Each group gets a scale s and an offset m, and each weight the
code q = clamp(round((w - m) / s), 0, 2**bits - 1), so that w ~ s * q + m (the stored format:
``kernels/quant_matmul/reference.py``). As the GPTQ reference code does it:
    symmetric   s = 2 max|w| / (2**bits - 1), m = -2**(bits - 1) s  (zero sits on the middle code)
    asymmetric  s = (max w - min w) / (2**bits - 1) over a range widened to include 0, m = -round(-min/s) s
An all-zero group gets s = 1 (any scale reproduces it exactly).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import torch

from minihybrid.checks import as_index
from minihybrid.kernels.quant_matmul.reference import BITS, dequantize, pack_codes

GROUP_SIZES = (32, 64, 128, None)  # None = per-channel: one group per output row


@dataclass(frozen=True)
class QuantScheme:
    bits: int = 4
    group_size: int | None = 128
    symmetric: bool = True

    def __post_init__(self) -> None:
        bits = as_index(self.bits)
        group_size = None if self.group_size is None else as_index(self.group_size)
        if bits not in BITS:
            raise ValueError(f"bits must be one of {BITS}, got {self.bits!r}")
        if (group_size is None and self.group_size is not None) or group_size not in GROUP_SIZES:
            raise ValueError(f"group_size must be one of {GROUP_SIZES} (None = per-channel), "
                             f"got {self.group_size!r}")
        object.__setattr__(self, "bits", bits)  # a numpy integer becomes an int (the file's JSON needs one)
        object.__setattr__(self, "group_size", group_size)
        if not isinstance(self.symmetric, bool):
            raise TypeError(f"symmetric must be True or False, got {self.symmetric!r}")

    @property
    def name(self) -> str:
        groups = "per-channel" if self.group_size is None else f"g{self.group_size}"
        return f"int{self.bits} {groups} {'sym' if self.symmetric else 'asym'}"

    def group_of(self, in_features: int) -> int:
        """The group size for a weight with this many inputs; raises if they do not split into groups."""
        size = in_features if self.group_size is None else self.group_size
        if in_features % size or (self.bits == 4 and size % 2):
            raise ValueError(f"{in_features} inputs do not split into groups of {size} ({self.name})")
        return size

    def for_inputs(self, in_features: int) -> QuantScheme:
        """This scheme for a weight with `in_features` inputs: itself when its group size divides them, else
        the same with the largest smaller group size that does (SmolLM2's 576 inputs take g64 under g128).
        A model quantized "g128" is g128 wherever its shapes allow; each QuantLinear records its own."""
        if self.group_size is None or in_features % self.group_size == 0:
            return self
        for size in sorted((g for g in GROUP_SIZES if g is not None and g < self.group_size), reverse=True):
            if in_features % size == 0:
                return replace(self, group_size=size)
        return self  # nothing divides: group_of raises the clear error

    def to_dict(self) -> dict:
        return asdict(self)


def fit_groups(w: torch.Tensor, scheme: QuantScheme) -> tuple[torch.Tensor, torch.Tensor]:
    """Scales and offsets (N, K // group_size) float32 fitted to W (N, K) by its groups' ranges."""
    n, k = w.shape
    groups = w.detach().float().reshape(n, k // scheme.group_of(k), -1)
    top = 2**scheme.bits - 1
    if scheme.symmetric:
        scales = 2 * groups.abs().amax(-1) / top
        scales = torch.where(scales > 0, scales, 1.0)
        return scales, -(2 ** (scheme.bits - 1)) * scales
    low, high = groups.amin(-1).clamp(max=0), groups.amax(-1).clamp(min=0)
    scales = (high - low) / top
    scales = torch.where(scales > 0, scales, 1.0)
    return scales, -torch.round(-low / scales) * scales


def quantize_codes(w: torch.Tensor, scales: torch.Tensor, mins: torch.Tensor, bits: int) -> torch.Tensor:
    """Codes (N, K) uint8 of W (N, K) under per-group scales and offsets (N, K // group_size)."""
    n, k = w.shape
    groups = w.detach().float().reshape(n, scales.shape[1], -1)
    codes = torch.round((groups - mins[..., None]) / scales[..., None]).clamp(0, 2**bits - 1)
    return codes.reshape(n, k).to(torch.uint8)


@dataclass
class QuantizedWeight:
    """W (N, K) in the stored format: packed codes, scales, mins (shapes: quant_matmul/reference.py)."""

    packed: torch.Tensor
    scales: torch.Tensor
    mins: torch.Tensor
    scheme: QuantScheme

    @property
    def shape(self) -> tuple[int, int]:
        n, packed_k = self.packed.shape
        return n, packed_k * 8 // self.scheme.bits

    @property
    def group_size(self) -> int:
        return self.scheme.group_of(self.shape[1])

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.packed, self.scales, self.mins))

    def dequantize(self) -> torch.Tensor:
        """The float32 W (N, K) these codes stand for."""
        return dequantize(self.packed, self.scales, self.mins, self.scheme.bits, self.group_size)


def quantize_weight(w: torch.Tensor, scheme: QuantScheme, scales: torch.Tensor | None = None,
                    mins: torch.Tensor | None = None) -> QuantizedWeight:
    """RTN-quantize W (N, K) under `scheme`, with groups fitted to W unless scales and mins are given.

    Exercise twin: ex05.quantize_groups (returning the codes unpacked, with scales and mins)."""
    if w.dim() != 2 or not w.numel():
        raise ValueError(f"a weight must be a non-empty (N, K), got shape {tuple(w.shape)}")
    if not torch.isfinite(w).all():
        raise ValueError("the weight holds NaN or inf, which no scale can quantize")
    if (scales is None) != (mins is None):
        raise ValueError("give both scales and mins, or neither (then both are fitted to the weight)")
    if scales is None:
        scales, mins = fit_groups(w, scheme)
    groups = (w.shape[0], w.shape[1] // scheme.group_of(w.shape[1]))
    if tuple(scales.shape) != groups or tuple(mins.shape) != groups:
        raise ValueError(f"scales {tuple(scales.shape)} and mins {tuple(mins.shape)} must be {groups} for a "
                         f"{tuple(w.shape)} weight in {scheme.name}")
    codes = quantize_codes(w, scales, mins, scheme.bits)
    return QuantizedWeight(pack_codes(codes, scheme.bits), scales.contiguous(), mins.contiguous(), scheme)
