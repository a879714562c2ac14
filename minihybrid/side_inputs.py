"""Cross-layer inputs: what a mixer may read besides its own block's input (module 02's variants).

A mixer class with `side_inputs = True` is called as mixer(x, cache=..., start_pos=..., side=SideInputs):

    side.embeddings          (B, T, d) this call's static input embeddings, embed(idx), before any block
    side.reference(mixer)    a list with one (1, R, d) tensor per block: the normalised input of that block's
                             mixer when the model runs on the mixer's fixed reference sequence (R >= the
                             positions this call reaches), or None inside a reference run (see below)

A mixer declares its reference sequence with `reference_key` (hashable; mixers with the same key share one
sequence) and `reference_embeddings(embed, length) -> (1, length, d)`, the sequence's input to block 0. It
does not depend on the input ids, so the model runs it at most once per forward. While gradients are on
(training) it is recomputed every call and gradients flow through it into the blocks; with gradients off it
is computed at the model's full max_seq_len, cached on the model, and recomputed only when a parameter
changes (its storage or its in-place version counter, which every optimizer step bumps).

Inside a reference run, and when a mixer is called on its own (side=None), every mixer with side inputs is
its own reference: Q and K come from its own input, and the embeddings are that run's block-0 input.
"""

from __future__ import annotations

import torch


class SideInputs:
    """Side inputs of one forward call; reference streams are computed on first use."""

    def __init__(self, model, embeddings: torch.Tensor, length: int | None):
        self.model = model
        self.embeddings = embeddings
        self.length = length  # positions this call reaches; None inside a reference run
        self._streams: dict = {}

    def reference(self, mixer) -> list[torch.Tensor] | None:
        if self.length is None:
            return None
        key = mixer.reference_key
        if key not in self._streams:
            self._streams[key] = reference_states(self.model, mixer, self.length)
        return self._streams[key]


def reference_states(model, mixer, length: int) -> list[torch.Tensor]:
    """Per block, the normalised mixer input (1, R, d) of `mixer`'s reference sequence run through `model`."""
    if torch.is_grad_enabled():
        return run_reference(model, mixer.reference_embeddings(model.embed, length))
    fingerprint = tuple((p.data_ptr(), p._version) for p in model.parameters())
    cached = model.reference_cache.get(mixer.reference_key)
    if cached is None or cached[0] != fingerprint:
        source = mixer.reference_embeddings(model.embed, model.config.max_seq_len)
        cached = model.reference_cache[mixer.reference_key] = (fingerprint, run_reference(model, source))
    return cached[1]


def run_reference(model, source: torch.Tensor) -> list[torch.Tensor]:
    """Run the blocks on source (1, R, d); return each block's normalised mixer input."""
    side = SideInputs(model, source, None)
    states, x = [], source
    for block in model.blocks:
        states.append(block.mixer_norm(x))
        x = block(x, side=side)
    return states
