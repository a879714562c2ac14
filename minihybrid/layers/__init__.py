"""Token mixers behind one interface, registered by letter.

Every mixer is an `nn.Module` built as `Mixer(config, layer_idx, **options)` and provides

    forward(x, cache=None, start_pos=0) -> y   x, y: (B, T, d_model), tokens at positions start_pos..
    init_cache(batch, max_len, dtype, device)   a per-layer cache object (see layers/cache.py)
    cache_bytes(seq_len, dtype_bytes=4) -> int  decode-cache bytes for one sequence of that length

A hybrid model is just a pattern of letters; adding a mixer family means writing one file here and
decorating its class with `@register("X")` — model.py does not change. The options a block's mixer gets
come from `ModelConfig.options_for` (the constructor's defaults < `mixer_options[letter]` < the block's
`LayerSpec.options`); tests/test_mixer_conformance.py tests every registered letter.
"""

from __future__ import annotations

MIXERS: dict[str, type] = {}


def register(letter: str):
    """Class decorator: make a mixer available under a one-letter name in layer patterns."""
    if len(letter) != 1:
        raise ValueError(f"mixer names are single letters, got {letter!r}")

    def wrap(cls):
        if letter in MIXERS and MIXERS[letter] is not cls:
            raise ValueError(f"mixer letter {letter!r} is already taken by {MIXERS[letter].__name__}")
        MIXERS[letter] = cls
        return cls

    return wrap


def build_mixer(config, layer_idx: int):
    """Instantiate the mixer of block `layer_idx` from `config.layers`."""
    return MIXERS[config.layers[layer_idx].mixer](config, layer_idx, **config.options_for(layer_idx))


# register the letters: A S (attention), M (SSM), H (intra-layer hybrid), F T N R P E (module 02),
# B (module 03)
from minihybrid.layers import attention, borrowed_qk, intra_hybrid, non_approx, ssm  # noqa: F401, I001
from minihybrid.layers import switchable, taylor, token_mlp  # noqa: F401
