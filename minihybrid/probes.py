"""Looking inside a model's mixers for one input: what each block mixes, and how large its logits grow.

    mixer_inputs(model, idx)   per block, the (x, side) its mixer was called with in a forward of idx
    mixing_maps(model, idx)    per block, (H, T, T) weights of the first sequence: row i says how much
                               position i's output takes from each position's value (None for a mixer
                               without such weights, e.g. the SSM)
    max_logits(model, idx)     per block, the largest |pre-softmax score| (None for a mixer without a
                               softmax: the MLP and Taylor variants, the SSM)

Module 02 draws every variant's map for the same input, and tracks the logits that blow up when every layer
is the non-approximate variant.
"""

from __future__ import annotations

import torch


def mixer_inputs(model, idx: torch.Tensor) -> list[tuple[torch.Tensor, object]]:
    """[(x (B, T, d_model), side or None)] per block, from one forward of idx (B, T) without gradients."""
    calls = {}

    def record(i, module, args, kwargs):
        calls[i] = (args[0], kwargs.get("side"))  # a reference run calls first; the main run's call is last

    hooks = [block.mixer.register_forward_pre_hook(lambda m, a, k, i=i: record(i, m, a, k), with_kwargs=True)
             for i, block in enumerate(model.blocks)]
    try:
        with torch.no_grad():
            model(idx)
    finally:
        for hook in hooks:
            hook.remove()
    return [calls[i] for i in range(len(model.blocks))]


def mixing_maps(model, idx: torch.Tensor) -> list[torch.Tensor | None]:
    with torch.no_grad():
        return [mixer.mixing_weights(x, side)[0] if hasattr(mixer, "mixing_weights") else None
                for (x, side), mixer in zip(mixer_inputs(model, idx), (b.mixer for b in model.blocks))]


def max_logits(model, idx: torch.Tensor) -> list[float | None]:
    out = []
    with torch.no_grad():
        for (x, side), block in zip(mixer_inputs(model, idx), model.blocks):
            if not hasattr(block.mixer, "logits"):
                out.append(None)
                continue
            logits = block.mixer.logits(x, side)
            out.append(logits[torch.isfinite(logits)].abs().max().item())
    return out
