"""Which layers a self-speculative draft skips: CLaSp's in-context dynamic program and its baselines.

Dimensions: L blocks, d d_model, M layers skipped (n_skip), J states in one batched layer call (<= M + 1).

CLaSp (arXiv 2505.24196, §3.2) picks the skip set from the hidden states of the last token the full model
verified: h_i is the full model's residual stream after i blocks (h_0 the embedding, h_L before the final
norm), and g(i, j) the best state reachable after i blocks with j of them skipped:

    g(0, 0) = h_0
    g(i, j) = whichever of  f_{i-1}(g(i-1, j))  (run block i-1)  and  g(i-1, j-1)  (skip it)
              is closer to h_i in cosine similarity; D(i, j) is that similarity

Backtracking from (L, M) gives a skip set of exactly M blocks. Block i-1 runs once per step i on all its
j-states together (one pseudo-batch of J states at the token's true position, attending over the cached
prefix). The DP is greedy per cell, so its set is close to, not always equal to, the best of all subsets.

Policies (what `minihybrid.speculative.speculative_generate` asks for the draft's skip set each round):
    NoSkip        the draft runs every block (e.g. a quantized copy of the model)
    FixedSkip     one set for the whole generation (e.g. chosen once offline)
    RandomSkip    M blocks drawn at random once (the baseline a search must beat)
    CLaSp         the DP on the last verified token, re-run every `interval` verify rounds
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from minihybrid.checks import as_index, check_int
from minihybrid.layers.cache import KVCache
from minihybrid.model import HybridLM, ModelCache


@dataclass
class SkipSearch:
    """The DP's answer: the skip set (sorted block indices) and the table D (L+1, M+1), NaN where unset."""

    skip_set: list[int]
    scores: torch.Tensor


def dp_skip_set(full_states: torch.Tensor, run_layer: Callable[[int, torch.Tensor], torch.Tensor],
                n_skip: int) -> SkipSearch:
    """CLaSp's DP (module docstring) over full_states (L+1, d); run_layer(i, states (J, d)) -> (J, d) applies
    block i to J states at once. Skip a block only when that is strictly closer to h_i; ties run it.

    Exercise twin: ex04.clasp_skip_set.
    """
    if not isinstance(full_states, torch.Tensor) or full_states.dim() != 2:
        raise ValueError("full_states must be a (L+1, d) tensor of the full model's hidden states")
    n_layers = full_states.shape[0] - 1
    check_int("n_skip", n_skip, minimum=0)
    if n_skip > n_layers:
        raise ValueError(f"n_skip={n_skip} exceeds the {n_layers} layers")
    states = full_states[:1]  # row j: g(i, j) for j = 0..min(i, M)
    scores = torch.full((n_layers + 1, n_skip + 1), float("nan"), dtype=full_states.dtype)
    scores[0, 0] = 1.0
    skipped = torch.zeros(n_layers + 1, n_skip + 1, dtype=torch.bool)
    for i in range(1, n_layers + 1):
        target = full_states[i][None]
        ran = run_layer(i - 1, states)  # (J, d): g(i-1, j) through block i-1, valid for j = 0..J-1
        width = min(i, n_skip) + 1  # j = 0..width-1; skipping is valid for j = 1..J
        run_cos = torch.full((width,), float("-inf"), dtype=full_states.dtype)
        run_cos[:len(ran)] = F.cosine_similarity(ran, target, dim=-1)
        skip_cos = torch.full((width,), float("-inf"), dtype=full_states.dtype)
        skip_cos[1:] = F.cosine_similarity(states, target, dim=-1)[:width - 1]
        skip = skip_cos > run_cos
        kept = F.pad(states[:width - 1], (0, 0, 1, 0))  # row j: g(i-1, j-1)
        states = torch.where(skip[:, None], kept, F.pad(ran, (0, 0, 0, width - len(ran))))
        scores[i, :width] = torch.maximum(run_cos, skip_cos)
        skipped[i, :width] = skip
    skip_set, j = [], n_skip
    for i in range(n_layers, 0, -1):
        if skipped[i, j]:
            skip_set.append(i - 1)
            j -= 1
    return SkipSearch(sorted(skip_set), scores)


class PrefixView:
    """A full-attention layer's cache seen read-only by J pseudo-batch states of one token at position `pos`:
    each attends over the cached keys 0..pos-1 (shared, batch 1) and its own key; nothing is written."""

    def __init__(self, cache: KVCache, pos: int):
        if not isinstance(cache, KVCache) or cache.window is not None:
            raise ValueError("CLaSp layer selection needs full-attention KV caches in every block")
        self.k, self.v, self.pos = cache.k[:, :, :pos], cache.v[:, :, :pos], pos

    def update(self, k: torch.Tensor, v: torch.Tensor, start_pos: int):
        """k, v: (J, Hkv, 1, D) of the states at self.pos -> keys, values (J, Hkv, pos+1, D) and None."""
        if start_pos != self.pos or k.shape[2] != 1:
            raise ValueError(f"a prefix view takes one token at position {self.pos}, got {k.shape[2]} at "
                             f"{start_pos}")
        batch = k.shape[0]
        return (torch.cat((self.k.expand(batch, -1, -1, -1), k), dim=2),
                torch.cat((self.v.expand(batch, -1, -1, -1), v), dim=2), None)


def layer_runner(model: HybridLM, cache: ModelCache, pos: int) -> Callable[[int, torch.Tensor], torch.Tensor]:
    """run_layer for `dp_skip_set`: block i on states (J, d) of the token at `pos`, over the cached prefix."""

    def run_layer(i: int, states: torch.Tensor) -> torch.Tensor:
        block = model.blocks[i]
        if block.side_inputs:
            raise ValueError(f"block {i}'s mixer reads side inputs; CLaSp selection does not support it")
        return block(states[:, None], cache=PrefixView(cache.layers[i], pos), start_pos=pos)[:, 0]

    return run_layer


class NoSkip:
    """The draft runs every block."""

    needs_hidden = False
    skip_set: tuple[int, ...] = ()

    def start(self, model: HybridLM) -> None:
        """Called once per generation, before the first round."""

    def update(self, model: HybridLM, cache: ModelCache, full_states: torch.Tensor, pos: int) -> None:
        """Called after every verify pass (and after prefill) with the last accepted token's states."""

    @property
    def name(self) -> str:
        return "none"


class FixedSkip(NoSkip):
    """The same skip set for every round."""

    def __init__(self, skip_set: Iterable[int]):
        self.skip_set = block_indices(skip_set)

    def start(self, model: HybridLM) -> None:
        check_skip_set(model, self.skip_set)

    @property
    def name(self) -> str:
        return f"fixed {list(self.skip_set)}"


class RandomSkip(FixedSkip):
    """n_skip blocks drawn uniformly at random (from `seed`) when a generation starts."""

    def __init__(self, n_skip: int, seed: int = 0):
        check_int("n_skip", n_skip, minimum=0)
        super().__init__(())
        self.n_skip, self.seed = n_skip, seed

    def start(self, model: HybridLM) -> None:
        check_n_skip(model, self.n_skip)
        self.skip_set = tuple(sorted(random.Random(self.seed).sample(range(len(model.blocks)), self.n_skip)))

    @property
    def name(self) -> str:
        return f"random {self.n_skip}"


class CLaSp(NoSkip):
    """CLaSp's DP on the last verified token, re-run every `interval` verify rounds (and after prefill)."""

    needs_hidden = True

    def __init__(self, n_skip: int, interval: int = 16):
        check_int("n_skip", n_skip, minimum=0)
        check_int("interval", interval)
        self.n_skip, self.interval = n_skip, interval
        self.calls = 0
        self.last: SkipSearch | None = None

    def start(self, model: HybridLM) -> None:
        check_n_skip(model, self.n_skip)
        if not all(isinstance(c, KVCache) and c.window is None for c in model.init_cache(1, 1).layers):
            raise ValueError("CLaSp layer selection needs full-attention KV caches in every block")
        self.calls, self.skip_set, self.last = 0, (), None

    def update(self, model: HybridLM, cache: ModelCache, full_states: torch.Tensor, pos: int) -> None:
        if self.calls % self.interval == 0:
            self.last = dp_skip_set(full_states, layer_runner(model, cache, pos), self.n_skip)
            self.skip_set = tuple(self.last.skip_set)
        self.calls += 1

    @property
    def name(self) -> str:
        return f"CLaSp {self.n_skip} every {self.interval}"


def check_n_skip(model: HybridLM, n_skip: int) -> None:
    """n_skip must leave at least one block to run."""
    check_int("n_skip", n_skip, minimum=0)
    if n_skip >= len(model.blocks):
        raise ValueError(f"n_skip={n_skip} would skip all {len(model.blocks)} blocks; at most "
                         f"{len(model.blocks) - 1}")


def block_indices(skip_set: Iterable[int]) -> tuple[int, ...]:
    """skip_set's distinct values, sorted, as ints: any integer-like values (``checks.as_index``);
    TypeError for anything else, bools and floats included."""
    if isinstance(skip_set, (str, bytes)) or not isinstance(skip_set, Iterable):
        raise TypeError(f"a skip set must be an iterable of block indices, got {type(skip_set).__name__}")
    items = list(skip_set)
    indices = [as_index(i) for i in items]
    bad = [i for i, index in zip(items, indices) if index is None]
    if bad:
        raise TypeError(f"skip set {items}: {bad} are not integers (block indices)")
    return tuple(sorted(set(indices)))


def check_skip_set(model: HybridLM, skip_set: Sequence[int]) -> None:
    """Block indices (ints, see `block_indices`) in range, not every block."""
    n = len(model.blocks)
    bad = [i for i in skip_set if not 0 <= i < n]
    if bad:
        raise ValueError(f"skip set {list(skip_set)}: {bad} are not block indices in 0..{n - 1}")
    check_n_skip(model, len(set(skip_set)))


@torch.inference_mode()
def skip_agreement(model: HybridLM, ids: torch.Tensor, skip_sets: Sequence[Sequence[int]],
                   start: int = 0) -> list[float]:
    """Teacher-forced top-1 agreement with the full model, per skip set, over ids (1, T) from position
    `start` (a prompt and its greedy continuation: how often a draft skipping that set would be right)."""
    full = model(ids).argmax(-1)[:, start:]
    return [(model(ids, skip_layers=skip).argmax(-1)[:, start:] == full).float().mean().item()
            for skip in skip_sets]


def layer_cosines(hidden: Sequence[torch.Tensor]) -> torch.Tensor:
    """(L+1, L+1) cosine similarity between every pair of residual streams (each (1, T, d), from
    `model(..., return_hidden=True)`), averaged over the T tokens."""
    states = F.normalize(torch.stack([h[0] for h in hidden]).float(), dim=-1)  # (L+1, T, d)
    return torch.einsum("itd,jtd->ij", states, states) / states.shape[1]
