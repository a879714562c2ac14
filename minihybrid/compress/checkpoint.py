"""Quantized models saved and loaded as safetensors, each module's scheme recorded in the file's metadata.

The file holds the state dict (packed codes, scales, mins, and the float tensors left unquantized) and the
metadata key "quantized": JSON {module name: scheme}. Loading rebuilds that structure on a float model of
the same config and refuses a file whose shapes or schemes do not match it, naming the module.
"""

from __future__ import annotations

import json
import os

from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from minihybrid.compress.modules import QuantLinear, fuse_projections, quantized_schemes, retie, set_module
from minihybrid.compress.quantize import QuantScheme


def save_quantized(model: nn.Module, path: str | os.PathLike) -> None:
    """Write the model's state dict and its QuantLinear schemes to a safetensors file."""
    schemes = {name: scheme.to_dict() for name, scheme in quantized_schemes(model).items()}
    if not schemes:
        raise ValueError("the model has no QuantLinear modules; quantize it first (compress.quantize_model)")
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, os.fspath(path), metadata={"quantized": json.dumps(schemes)})


def load_quantized(model: nn.Module, path: str | os.PathLike, scheme: QuantScheme | None = None) -> nn.Module:
    """Load a file written by save_quantized into `model` (a float model of the same config), in place.

    scheme: when given, every quantized module in the file must use it (scheme.for_inputs of its shape).
    Raises ValueError on a corrupt file, a module the model lacks, a shape or a scheme that does not match;
    TypeError when the file quantizes a module that is not a linear in this model. A refused file leaves the
    model as it was."""
    try:
        with safe_open(os.fspath(path), framework="pt") as f:
            metadata = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not iterable)
    except (SafetensorError, OSError) as err:
        raise ValueError(f"cannot read quantized checkpoint {os.fspath(path)!r}: {err}") from err
    if "quantized" not in metadata:
        raise ValueError(f"{os.fspath(path)!r} has no 'quantized' metadata: not written by save_quantized")
    swapped = []  # (name, the module a QuantLinear replaced): put back when the file does not fit the model
    try:
        for name, fields in json.loads(metadata["quantized"]).items():
            linear, saved = _fitting_linear(model, name, QuantScheme(**fields), scheme, state)
            swapped.append((name, linear))
            set_module(model, name, QuantLinear.empty(linear.out_features, linear.in_features, saved))
        if isinstance(getattr(model, "embed", None), nn.Module):
            swapped.append(("embed", model.embed))
        retie(model)
        _check_state(model.state_dict(), state)
    except (ValueError, TypeError):
        for name, module in reversed(swapped):
            set_module(model, name, module)
        raise
    model.load_state_dict(state)
    return fuse_projections(model)


def _fitting_linear(model: nn.Module, name: str, saved: QuantScheme, scheme: QuantScheme | None,
                    state: dict) -> tuple[nn.Module, QuantScheme]:
    """The model's linear `name` and its saved scheme, once the file's codes fit both."""
    try:
        linear = model.get_submodule(name)
    except AttributeError as err:
        raise ValueError(f"the checkpoint quantizes {name}, which this model does not have") from err
    if not isinstance(linear, (nn.Linear, QuantLinear)):
        raise TypeError(f"the checkpoint quantizes {name}, a {type(linear).__name__} in this model")
    shape = (linear.out_features, linear.in_features)
    if scheme is not None and saved != scheme.for_inputs(shape[1]):
        raise ValueError(f"{name} was saved as {saved.name}, expected {scheme.for_inputs(shape[1]).name}")
    packed = state.get(f"{name}.packed")
    if packed is None or tuple(packed.shape) != (shape[0], shape[1] * saved.bits // 8):
        found = None if packed is None else tuple(packed.shape)
        raise ValueError(f"{name}: the checkpoint's packed codes {found} do not fit a {shape} weight "
                         f"in {saved.name}")
    return linear, saved


def _check_state(expected: dict, state: dict) -> None:
    """Every tensor of the file has a place of its shape in the model, and the model lacks none."""
    for key, tensor in state.items():
        if key not in expected or expected[key].shape != tensor.shape:
            found = "absent" if key not in expected else tuple(expected[key].shape)
            raise ValueError(f"checkpoint tensor {key} {tuple(tensor.shape)} does not fit the model: {found}")
    missing = sorted(set(expected) - set(state))
    if missing:
        raise ValueError(f"the checkpoint lacks {len(missing)} tensors of the model, e.g. {missing[:3]}")
