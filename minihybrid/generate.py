"""Autoregressive decoding: greedy and temperature / top-k sampling, with or without a cache.

Two steps build every decoding loop (speculative decoding reuses them):

    prefill(model, tokens, cache)            (B, T) ids -> (B, V) logits of the next token, cache filled
    decode_one_token(model, token, cache)    (B,) ids   -> (B, V) logits, one single-token forward pass

With a cache the prompt is prefilled once and each new token costs one `decode_one_token`; without one,
every step prefills the whole sequence again (the slow reference that cached decoding must match token for
token).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch

from minihybrid.checks import check_int, check_number
from minihybrid.model import HybridLM, ModelCache
from minihybrid.timing import clock


@dataclass
class GenerationResult:
    tokens: torch.Tensor  # (B, T_prompt + n_new) prompt followed by the new tokens
    new_tokens: int
    prefill_seconds: float
    decode_seconds: float

    @property
    def tokens_per_second(self) -> float:
        """New tokens per second of the decode phase (prefill excluded)."""
        return self.new_tokens / self.decode_seconds if self.decode_seconds > 0 else float("inf")


def pick_next(logits: torch.Tensor, temperature: float = 0.0, top_k: int | None = None,
              generator: torch.Generator | None = None) -> torch.Tensor:
    """logits (B, V) -> next ids (B,). temperature 0 = greedy (argmax)."""
    _check_sampling(temperature, top_k)
    if temperature == 0:
        return logits.argmax(-1)
    return torch.multinomial(sampling_probs(logits, temperature, top_k), 1, generator=generator).squeeze(-1)


def sampling_probs(logits: torch.Tensor, temperature: float, top_k: int | None = None) -> torch.Tensor:
    """logits (..., V) -> the distribution (..., V) that sampling at temperature > 0 draws from."""
    logits = logits.float() / temperature
    if top_k is not None:
        kth = torch.topk(logits, min(top_k, logits.shape[-1]), dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    return torch.softmax(logits, dim=-1)


def prefill(model: HybridLM, tokens: torch.Tensor, cache: ModelCache | None = None) -> torch.Tensor:
    """Run tokens (B, T) through the model (filling `cache` from `cache.pos`); next-token logits (B, V).

    Without a cache this is the slow reference step: the whole sequence every time.
    """
    return model(tokens, cache=cache, last_only=True)[:, -1]


def decode_one_token(model: HybridLM, token: torch.Tensor, cache: ModelCache,
                     skip_layers: Iterable[int] | None = None) -> torch.Tensor:
    """One cached step: token (B,) ids at position cache.pos -> next-token logits (B, V).

    skip_layers: blocks left out (a layer-skipping draft); they write nothing into their caches."""
    return model(token[:, None], cache=cache, skip_layers=skip_layers, last_only=True)[:, -1]


@torch.inference_mode()
def generate(model: HybridLM, prompt: torch.Tensor, max_new_tokens: int, *, temperature: float = 0.0,
             top_k: int | None = None, use_cache: bool = True, eos_id: int | None = None,
             seed: int | None = None) -> GenerationResult:
    """Continue `prompt` (B, T) by up to max_new_tokens tokens: `prefill`, then `decode_one_token` per token.

    Stops early when every sequence has produced `eos_id`; a sequence that finished earlier is padded
    with `eos_id`. Sampling is reproducible with `seed`. The model's train/eval mode is restored.
    """
    _check_generate_args(model, prompt, max_new_tokens, temperature, top_k, eos_id)
    total = prompt.shape[1] + max_new_tokens
    device = prompt.device
    generator = torch.Generator(device=device).manual_seed(seed) if seed is not None else None
    was_training = model.training
    model.eval()
    try:
        tokens = prompt
        cache = model.init_cache(prompt.shape[0], total) if use_cache else None
        done = torch.zeros(prompt.shape[0], dtype=torch.bool, device=device)
        t0 = clock(device)
        logits = prefill(model, prompt, cache)
        t1 = clock(device)
        for step in range(max_new_tokens):
            next_id = pick_next(logits, temperature, top_k, generator)
            if eos_id is not None:
                next_id = next_id.masked_fill(done, eos_id)
                done |= next_id == eos_id
            tokens = torch.cat((tokens, next_id[:, None]), dim=1)
            if eos_id is not None and done.all():
                break
            if step + 1 < max_new_tokens:
                logits = decode_one_token(model, next_id, cache) if use_cache else prefill(model, tokens)
        t2 = clock(device)
    finally:
        model.train(was_training)
    return GenerationResult(tokens, tokens.shape[1] - prompt.shape[1], t1 - t0, t2 - t1)


def _check_generate_args(model, prompt, max_new_tokens, temperature, top_k, eos_id) -> None:
    model.check_ids(prompt, name="prompt")
    check_int("max_new_tokens", max_new_tokens)
    _check_sampling(temperature, top_k)
    vocab = model.config.vocab_size
    if eos_id is not None and not 0 <= eos_id < vocab:
        raise ValueError(f"eos_id must be a token id in 0..{vocab - 1}, got {eos_id}")
    total = prompt.shape[1] + max_new_tokens
    if total > model.config.max_seq_len:
        raise ValueError(f"prompt + max_new_tokens = {total} exceeds max_seq_len={model.config.max_seq_len}")


def _check_sampling(temperature: float, top_k: int | None) -> None:
    check_number("temperature", temperature)
    check_int("top_k", top_k, optional=True)
