"""Self-speculative decoding: a cheap draft proposes tokens, the full model checks them all in one pass.

Dimensions: n tokens drafted in a round (<= max_draft), V vocabulary, L blocks, d d_model.

A round (Leviathan et al. 2023; CLaSp, arXiv 2505.24196), batch 1:

    the last accepted token t sits at position p and is not in the cache yet
    draft    n cheap steps from t write positions p..p+n-1 and propose d_1..d_n; drafting stops after a token
             whose top-1 probability is below `threshold`, or at `max_draft`
    verify   one full forward over [t, d_1..d_n] at positions p..p+n writes every block's KV there and gives
             the full model's choice y_0..y_n after each prefix
    accept   greedy: the longest prefix with d_i == y_{i-1} (k tokens), then y_k — the correction, or a bonus
             token when all n agree (`accept_greedy`); sampling: `accept_sampled`
    rollback every cache to p + k + 1; the round added k + 1 tokens and y_k is the next t

The draft is any cheaper forward that writes the same cache: the model itself with blocks skipped (identity,
they write no KV; `minihybrid.layer_select` picks which), a copy with low-bit weights (module 05), or both.
The verify pass alone decides every token, so the greedy output is plain greedy decoding's whatever the
draft proposes — up to float rounding: one k-token forward and k single-token ones may round differently,
and an exact tie between two tokens could then break the other way (the identity is checked, not assumed).

Cost model (greedy): with acceptance a per drafted token, n drafted per round, a draft step costing c and a
verify pass over n + 1 tokens costing V(n + 1) single-token steps of the full model, a round yields
E = (1 - a^(n+1)) / (1 - a) tokens, so the speed-up over plain decoding is E / (n c + V(n + 1))
(`expected_speedup`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from minihybrid.checks import check_int, check_number
from minihybrid.generate import GenerationResult, decode_one_token, pick_next, sampling_probs
from minihybrid.layer_select import NoSkip
from minihybrid.layers.cache import KVCache, NoCache
from minihybrid.model import HybridLM, ModelCache
from minihybrid.timing import clock


def accept_greedy(drafted: torch.Tensor, target: torch.Tensor) -> tuple[int, int]:
    """drafted (n,) ids, target (n+1,) the full model's argmax after each verify prefix -> (k, next id):
    k = the longest prefix with drafted[i] == target[i], next = target[k].

    Exercise twin: ex04.accept_greedy.
    """
    agree = (drafted == target[:len(drafted)]).long()
    k = int(agree.cumprod(0).sum())
    return k, int(target[k])


def accept_sampled(drafted: torch.Tensor, q: torch.Tensor, p: torch.Tensor,
                   u: torch.Tensor) -> tuple[int, torch.Tensor]:
    """Speculative sampling's rule: drafted (n,) ids sampled from the draft's q (n, V); p (n+1, V) the full
    model's distributions at the same positions; u (n,) uniforms in [0, 1).

    Accept drafted[i] iff u[i] < p[i, d_i] / q[i, d_i], in order. At the first rejection i return (i, the
    residual max(p[i] - q[i], 0) normalised) — p[i] itself if that is all zero; when all n are accepted
    return (n, p[n]). Sampling the next token from the returned (V,) distribution makes every output token
    distributed exactly as the full model's.

    Exercise twin: ex04.accept_sampled.
    """
    for i, d in enumerate(drafted.tolist()):
        if not u[i] < p[i, d] / q[i, d]:
            residual = (p[i] - q[i]).clamp(min=0)
            total = residual.sum()
            return i, residual / total if total > 0 else p[i]
    return len(drafted), p[len(drafted)]


def expected_speedup(acceptance: float, n_draft: float, draft_cost: float, verify_cost: float) -> float:
    """E / (n c + V): tokens per round over its cost in full single-token steps (module docstring).

    acceptance a in [0, 1], n_draft n >= 0, draft_cost c >= 0, verify_cost V > 0."""
    check_number("acceptance", acceptance)
    if acceptance > 1:
        raise ValueError(f"acceptance must be a probability in [0, 1], got {acceptance}")
    check_number("n_draft", n_draft)
    check_number("draft_cost", draft_cost)
    check_number("verify_cost", verify_cost, inclusive=False)
    tokens = n_draft + 1 if acceptance >= 1 else (1 - acceptance ** (n_draft + 1)) / (1 - acceptance)
    return tokens / (n_draft * draft_cost + verify_cost)


@dataclass
class SpecStats:
    """Counts and seconds of one speculative generation (prefill excluded from the seconds)."""

    rounds: int = 0
    drafted: int = 0
    accepted: int = 0
    draft_s: float = 0.0
    verify_s: float = 0.0
    select_s: float = 0.0
    total_s: float = 0.0
    skip_sets: list[tuple[int, ...]] = field(default_factory=list)  # the draft's skip set, per round

    @property
    def acceptance_rate(self) -> float:
        """Accepted / drafted tokens."""
        return self.accepted / self.drafted if self.drafted else 0.0

    @property
    def mean_accepted(self) -> float:
        """Drafted tokens accepted per round."""
        return self.accepted / self.rounds if self.rounds else 0.0

    @property
    def other_s(self) -> float:
        """Seconds outside draft, verify and layer selection: the rest (acceptance, rollback, Python)."""
        return self.total_s - self.draft_s - self.verify_s - self.select_s


@dataclass
class SpeculativeResult(GenerationResult):
    stats: SpecStats = field(default_factory=SpecStats)


@torch.inference_mode()
def speculative_generate(model: HybridLM, prompt: torch.Tensor, max_new_tokens: int, *,
                         draft_model: HybridLM | None = None, skip=None, threshold: float = 0.7,
                         max_draft: int = 8, temperature: float = 0.0, top_k: int | None = None,
                         seed: int | None = None) -> SpeculativeResult:
    """Continue prompt (1, T) by max_new_tokens tokens, drafting with `draft_model` (default: `model`
    itself) minus the blocks the `skip` policy names (a `minihybrid.layer_select` policy; default NoSkip).

    Greedy at temperature 0 (the output is plain greedy decoding's), else sampling with `accept_sampled`
    (every token distributed as the full model's; reproducible with `seed`).
    """
    skip = NoSkip() if skip is None else skip
    draft_model = model if draft_model is None else draft_model
    _check_args(model, draft_model, skip, prompt, max_new_tokens, threshold, max_draft, temperature, top_k)
    skip.start(model)
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    stats = SpecStats()
    cache = model.init_cache(1, prompt.shape[1] + max_new_tokens)
    was_training = (model.training, draft_model.training)
    model.eval()
    draft_model.eval()
    try:
        t0 = clock()
        logits, hidden = model(prompt, cache=cache, return_hidden=True, last_only=True)
        token = int(pick_next(logits[:, -1], temperature, top_k, generator)[0])
        t1 = clock()
        _select(skip, model, cache, hidden, prompt.shape[1] - 1, stats)
        out = [token]
        while len(out) < max_new_tokens:
            out += _round(model, draft_model, skip, cache, token, max_new_tokens - len(out), threshold,
                          max_draft, temperature, top_k, generator, stats)
            token = out[-1]
        stats.total_s = clock() - t1
    finally:
        model.train(was_training[0])
        draft_model.train(was_training[1])
    new = torch.tensor([out[:max_new_tokens]], dtype=prompt.dtype)
    return SpeculativeResult(torch.cat((prompt, new), dim=1), new.shape[1], t1 - t0, stats.total_s, stats)


def _round(model, draft_model, skip, cache: ModelCache, token: int, remaining: int, threshold, max_draft,
           temperature, top_k, generator, stats: SpecStats) -> list[int]:
    """One draft-verify-accept round from `token` (at cache.pos); returns the tokens it adds (k + 1)."""
    pos = cache.pos
    skip_set = skip.skip_set
    t0 = clock()
    drafted, q_rows = [], []
    current = torch.tensor([token])
    for _ in range(min(max_draft, remaining - 1)):  # a round adds n + 1 tokens: never past the end
        logits = decode_one_token(draft_model, current, cache, skip_layers=skip_set)[0]
        if temperature == 0:
            probs = torch.softmax(logits.float(), -1)
            current = probs.argmax()[None]
        else:
            probs = sampling_probs(logits, temperature, top_k)
            current = torch.multinomial(probs, 1, generator=generator)
        drafted.append(int(current))
        q_rows.append(probs)
        if probs.max() < threshold:
            break
    t1 = clock()
    cache.rollback(pos)
    ids = torch.tensor([[token, *drafted]])
    if skip.needs_hidden:
        logits, hidden = model(ids, cache=cache, return_hidden=True)
    else:
        logits, hidden = model(ids, cache=cache), None
    t2 = clock()
    drafted_t = torch.tensor(drafted, dtype=torch.long)
    if temperature == 0:
        k, nxt = accept_greedy(drafted_t, logits[0].argmax(-1))
    else:
        u = torch.rand(len(drafted), generator=generator)
        q = torch.stack(q_rows) if q_rows else torch.empty(0, logits.shape[-1])
        k, dist = accept_sampled(drafted_t, q, sampling_probs(logits[0], temperature, top_k), u)
        nxt = int(torch.multinomial(dist, 1, generator=generator))
    cache.rollback(pos + k + 1)
    stats.rounds += 1
    stats.drafted += len(drafted)
    stats.accepted += k
    stats.draft_s += t1 - t0
    stats.verify_s += t2 - t1
    stats.skip_sets.append(skip_set)
    _select(skip, model, cache, hidden, pos + k, stats, index=k)
    return [*drafted[:k], nxt]


def _select(skip, model, cache, hidden, pos: int, stats: SpecStats, index: int = -1) -> None:
    """Hand the skip policy the full model's states (L+1, d) of the token at `pos` (hidden's row `index`)."""
    if not skip.needs_hidden:
        return
    t0 = clock()
    skip.update(model, cache, torch.stack([h[0, index] for h in hidden]), pos)
    stats.select_s += clock() - t0


def _cache_layout(model: HybridLM) -> list[tuple]:
    """Per block what a draft must share with the model to write its cache: the cache type, and for a KV
    cache its KV heads, head size and window (None: full attention)."""
    return [(type(c).__name__, *((c.k.shape[1], c.k.shape[3], c.window) if isinstance(c, KVCache) else ()))
            for c in model.init_cache(1, 1).layers]


def _check_draft(model: HybridLM, draft_model: HybridLM, total: int) -> None:
    """The draft must write the model's cache for `total` positions: same vocabulary, dtype, cache layout."""
    if draft_model.config.vocab_size != model.config.vocab_size:
        raise ValueError(f"the draft's vocabulary ({draft_model.config.vocab_size}) is not the model's "
                         f"({model.config.vocab_size})")
    if total > draft_model.config.max_seq_len:
        raise ValueError(f"prompt + max_new_tokens = {total} exceeds the draft model's max_seq_len="
                         f"{draft_model.config.max_seq_len}")
    dtypes = next(draft_model.parameters()).dtype, next(model.parameters()).dtype
    if dtypes[0] != dtypes[1]:
        raise ValueError(f"the draft model's dtype {dtypes[0]} is not the model's {dtypes[1]}: its keys and "
                         "values would not fit the model's cache")
    draft_layout, layout = _cache_layout(draft_model), _cache_layout(model)
    if len(draft_layout) != len(layout):
        raise ValueError(f"the draft model has {len(draft_layout)} blocks, the model {len(layout)}: a draft "
                         "must write the model's cache layout")
    for i, (got, want) in enumerate(zip(draft_layout, layout)):
        if got != want:
            raise ValueError(f"the draft model's block {i} does not write the model's cache layout (cache "
                             f"type, KV heads, head size, window): {got} vs {want}")


def _check_args(model, draft_model, skip, prompt, max_new_tokens, threshold, max_draft, temperature,
                top_k) -> None:
    if not isinstance(draft_model, HybridLM):
        raise TypeError(f"draft_model must be a HybridLM (or None: the model itself), got "
                        f"{type(draft_model).__name__}")
    if not isinstance(skip, NoSkip):
        raise TypeError(f"skip must be a minihybrid.layer_select policy (NoSkip, FixedSkip, RandomSkip, "
                        f"CLaSp) or None, got {type(skip).__name__}; for fixed blocks use FixedSkip(...)")
    model.check_ids(prompt, name="prompt")
    if prompt.shape[0] != 1:
        raise ValueError(f"speculative decoding takes one sequence (batch 1), got batch {prompt.shape[0]}")
    check_int("max_new_tokens", max_new_tokens)
    check_int("max_draft", max_draft)
    check_number("threshold", threshold)
    if threshold > 1:
        raise ValueError(f"threshold must be a probability in [0, 1], got {threshold}")
    check_number("temperature", temperature)
    check_int("top_k", top_k, optional=True)
    total = prompt.shape[1] + max_new_tokens
    if total > model.config.max_seq_len:
        raise ValueError(f"prompt + max_new_tokens = {total} exceeds max_seq_len={model.config.max_seq_len}")
    if draft_model is not model:
        _check_draft(model, draft_model, total)
    layers = model.init_cache(1, 1).layers
    recurrent = [i for i, c in enumerate(layers) if not isinstance(c, (KVCache, NoCache))]
    if recurrent:
        raise ValueError(f"blocks {recurrent} keep a recurrent state: speculative rollback needs KV caches")
    if max_draft > KVCache.SLACK and any(isinstance(c, KVCache) and c.window is not None for c in layers):
        raise ValueError(f"max_draft={max_draft} exceeds the {KVCache.SLACK} tokens a sliding-window cache "
                         "can roll back")
