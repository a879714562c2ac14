"""Model configuration and layer patterns.

A hybrid model is a stack of blocks; each block has one token mixer, named by a letter registered in
`minihybrid.layers` ("A" = softmax attention, "S" = sliding-window attention, more in later modules).
`ModelConfig.layers` holds one `LayerSpec` per block and can be written three ways:

    pattern="AASAAS"           one letter per block
    pattern="1:5", n_layers=12 attention:other ratio, attention blocks spread evenly through the middle
    pattern="1:5@front", ...   the same with a named placement (minihybrid/patterns.py)
    pattern=[LayerSpec("A"), LayerSpec("S", {"window": 16})]   explicit specs with per-layer options

A mixer's hyperparameters are keyword options of its constructor, with their defaults there. The options a
block gets are, from lowest to highest priority: the constructor's defaults, the model-wide
`ModelConfig.mixer_options[letter]`, and the block's own `LayerSpec.options`:

    ModelConfig(pattern="ASAS", mixer_options={"S": {"window": 32}})   every "S" block sees 32 tokens

Named presets (`ModelConfig.from_name("tiny")`) hold the small configurations the course reuses.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from minihybrid.checks import check_int, check_number
from minihybrid.patterns import expand_ratio


@dataclass(frozen=True)
class LayerSpec:
    """One block: the mixer letter and keyword options passed to the mixer's constructor."""

    mixer: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class ModelConfig:
    """Everything needed to build a `HybridLM`.

    `pattern` is resolved into `layers` (a list of `LayerSpec`) at construction; `n_layers` is then the
    number of blocks.
    """

    vocab_size: int = 256
    d_model: int = 128
    n_heads: int = 4
    n_kv_heads: int | None = None  # None: same as n_heads (multi-head); fewer: grouped-query attention
    head_dim: int | None = None  # None: d_model // n_heads
    d_ff: int | None = None  # None: SwiGLU width 8/3 * d_model rounded up to a multiple of 32
    pattern: str | Sequence[LayerSpec | str] = "AAAA"
    n_layers: int | None = None  # only needed for ratio patterns
    other: str = "S"  # the letter of the non-attention blocks in a ratio pattern
    max_seq_len: int = 1024
    rope_base: float = 10000.0
    norm_eps: float = 1e-5
    tie_embeddings: bool = True
    mixer_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # letter -> options
    attn_backend: str = "torch"  # a kernels.attention backend: "torch" (SDPA, autograd), "numba", ...
    init_std: float = 0.02
    embed_init_std: float | None = None  # None: init_std. Larger lets a tiny budget leave the unigram plateau
    layers: list[LayerSpec] = field(init=False)

    @classmethod
    def from_name(cls, name: str, **overrides) -> ModelConfig:
        """A named preset (see PRESETS), with any field overridden: from_name("tiny", d_model=64)."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(sorted(PRESETS))}")
        return cls(**{**PRESETS[name], **overrides})

    def __post_init__(self) -> None:
        _check_sizes(self)
        self.n_kv_heads = self.n_kv_heads or self.n_heads
        self.head_dim = self.head_dim or self.d_model // self.n_heads
        if self.d_ff is None:
            self.d_ff = 32 * -(-(8 * self.d_model // 3) // 32)
        if self.n_heads % self.n_kv_heads:
            raise ValueError(f"n_heads={self.n_heads} must be a multiple of n_kv_heads={self.n_kv_heads}")
        if self.head_dim % 2:
            raise ValueError(f"head_dim={self.head_dim} must be even for rotary embeddings")
        self.layers = parse_pattern(self.pattern, self.n_layers, self.other)
        if self.n_layers is not None and self.n_layers != len(self.layers):
            raise ValueError(f"pattern has {len(self.layers)} layers but n_layers={self.n_layers}")
        self.n_layers = len(self.layers)
        _check_options(self)

    @property
    def embedding_std(self) -> float:
        """The token embeddings' initial standard deviation."""
        return self.init_std if self.embed_init_std is None else self.embed_init_std

    @property
    def pattern_string(self) -> str:
        return "".join(spec.mixer for spec in self.layers)

    def options_for(self, layer_idx: int) -> dict[str, Any]:
        """Keyword options for block `layer_idx`'s mixer: model-wide ones, then the block's own on top."""
        spec = self.layers[layer_idx]
        return {**self.mixer_options.get(spec.mixer, {}), **spec.options}

    def with_pattern(self, pattern, n_layers: int | None = None) -> ModelConfig:
        """The same model sizes with another layer pattern."""
        return replace(self, pattern=pattern, n_layers=n_layers)


PRESETS: dict[str, dict[str, Any]] = {
    # byte-level models trained on Shakespeare (notebook 00, the baseline reproduction, `minihybrid train`)
    "tiny": {"vocab_size": 256, "d_model": 128, "n_heads": 4, "pattern": "AAAA", "max_seq_len": 256},
    "micro": {"vocab_size": 256, "d_model": 64, "n_heads": 4, "pattern": "AA", "max_seq_len": 256},
}


def _check_sizes(config: ModelConfig) -> None:
    """Every size is a positive int (bool is refused), so a typo fails here and not deep inside torch."""
    for name in ("vocab_size", "d_model", "n_heads", "max_seq_len"):
        check_int(f"ModelConfig.{name}", getattr(config, name))
    for name in ("n_kv_heads", "head_dim", "d_ff", "n_layers"):
        check_int(f"ModelConfig.{name}", getattr(config, name), optional=True)
    for name in ("rope_base", "norm_eps", "init_std"):
        check_number(f"ModelConfig.{name}", getattr(config, name), inclusive=False)
    if config.embed_init_std is not None:
        check_number("ModelConfig.embed_init_std", config.embed_init_std, inclusive=False)


def _check_options(config: ModelConfig) -> None:
    """Every option names a keyword of its mixer's constructor; mixer_options keys are registered letters."""
    from minihybrid.layers import MIXERS

    if not isinstance(config.mixer_options, Mapping):
        raise TypeError(f"mixer_options must map mixer letters to dicts, got {config.mixer_options!r}")
    for letter, options in config.mixer_options.items():
        if letter not in MIXERS:
            raise ValueError(f"mixer_options names unknown mixer {letter!r}; registered: {', '.join(MIXERS)}")
        if not isinstance(options, Mapping):
            raise TypeError(f"mixer_options[{letter!r}] must be a dict of options, got {options!r}")
    for i, spec in enumerate(config.layers):
        cls = MIXERS[spec.mixer]
        accepted = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "config",
                                                                                       "layer_idx")]
        for key in config.options_for(i):
            if key not in accepted:
                raise ValueError(f"block {i}: mixer {spec.mixer!r} ({cls.__name__}) has no option {key!r}; "
                                 f"its options: {', '.join(accepted) or 'none'}")


def parse_pattern(pattern, n_layers: int | None = None, other: str = "S") -> list[LayerSpec]:
    """Turn a letter string, an "a:b[@placement]" ratio or a list of specs into a list of `LayerSpec`."""
    from minihybrid.layers import MIXERS  # late import: layers register themselves on import

    if isinstance(pattern, str) and ":" in pattern:
        letters = list(expand_ratio(pattern, n_layers, other))
    else:
        letters = list(pattern)
    if not letters:
        raise ValueError("a layer pattern needs at least one layer")
    specs = [item if isinstance(item, LayerSpec) else LayerSpec(item) for item in letters]
    for spec in specs:
        if spec.mixer not in MIXERS:
            allowed = ", ".join(f"{k} ({v.__name__})" for k, v in sorted(MIXERS.items()))
            raise ValueError(
                f"unknown mixer letter {spec.mixer!r} in pattern {pattern!r}; allowed: {allowed}")
    return specs
