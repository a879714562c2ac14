"""Autoregressive decoding: greedy and temperature / top-k sampling, with or without a cache.

With a cache the prompt is prefilled once and each new token costs one single-token forward pass;
without one, every step re-runs the whole sequence (the slow reference that cached decoding must
match token for token).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from minihybrid.model import HybridLM


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
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if temperature == 0:
        return logits.argmax(-1)
    logits = logits.float() / temperature
    if top_k is not None:
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        kth = torch.topk(logits, min(top_k, logits.shape[-1]), dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


@torch.inference_mode()
def generate(model: HybridLM, prompt: torch.Tensor, max_new_tokens: int, *, temperature: float = 0.0,
             top_k: int | None = None, use_cache: bool = True, eos_id: int | None = None,
             seed: int | None = None) -> GenerationResult:
    """Continue `prompt` (B, T) by up to max_new_tokens tokens.

    Stops early when every sequence has produced `eos_id`; a sequence that finished earlier is padded
    with `eos_id`. Sampling is reproducible with `seed`. The model's train/eval mode is restored.
    """
    if prompt.dim() != 2 or prompt.shape[1] == 0:
        raise ValueError(f"prompt must be (batch, seq_len>0) token ids, got shape {tuple(prompt.shape)}")
    total = prompt.shape[1] + max_new_tokens
    if total > model.config.max_seq_len:
        raise ValueError(f"prompt + max_new_tokens = {total} exceeds max_seq_len={model.config.max_seq_len}")
    device = prompt.device
    generator = torch.Generator(device=device).manual_seed(seed) if seed is not None else None
    was_training = model.training
    model.eval()
    tokens = prompt
    cache = model.init_cache(prompt.shape[0], total) if use_cache else None
    done = torch.zeros(prompt.shape[0], dtype=torch.bool, device=device)
    t0 = _clock(device)
    logits = model(prompt, cache=cache, last_only=True)[:, -1]
    t1 = _clock(device)
    for step in range(max_new_tokens):
        next_id = pick_next(logits, temperature, top_k, generator)
        if eos_id is not None:
            next_id = next_id.masked_fill(done, eos_id)
            done |= next_id == eos_id
        tokens = torch.cat((tokens, next_id[:, None]), dim=1)
        if eos_id is not None and done.all():
            break
        if step + 1 < max_new_tokens:
            logits = model(next_id[:, None] if use_cache else tokens, cache=cache, last_only=True)[:, -1]
    t2 = _clock(device)
    model.train(was_training)
    return GenerationResult(tokens, tokens.shape[1] - prompt.shape[1], t1 - t0, t2 - t1)


def _clock(device: torch.device) -> float:
    """Wall time after the device has finished its queued work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()
