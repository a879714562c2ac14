"""Greedy decoding speed of SmolLM2-135M: minihybrid's HybridLM vs transformers' LlamaForCausalLM.

Used by the baseline reproduction and by benchmarks/bench_decode.py.

Both load the same GGUF file (dequantized to float32), decode the same chat prompt greedily with a KV cache
for the same number of new tokens on the same torch threads. After one warm-up run each, the two are timed
alternately `repeats` times; the figure is the median end-to-end time (prefill + n_new tokens). The generated
ids must agree.
"""

from __future__ import annotations

import platform
import statistics
import time
from pathlib import Path

import torch

from minihybrid.generate import generate
from minihybrid.pretrained import load_smollm2

DEFAULT_PROMPT = "Explain in a few sentences why the sky is blue."


def load_transformers(path: Path):
    """transformers' own GGUF loader on the same file, float32, eval mode, never stopping at EOS."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    model.generation_config.eos_token_id = None  # same work as generate() without eos_id: all n_new tokens
    return model.eval()


@torch.inference_mode()
def _hf_generate(model, ids: torch.Tensor, n_new: int) -> torch.Tensor:
    return model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n_new, do_sample=False,
                          use_cache=True)


def _timed(fn) -> tuple[float, torch.Tensor]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def compare_decode_speed(n_new: int = 64, prompt: str = DEFAULT_PROMPT, repeats: int = 3,
                         path: str | Path | None = None, threads: int | None = None) -> dict:
    """Greedy tokens/s of both implementations on one prompt; returns the figures as a dict.

    tokens/s = n_new / median end-to-end seconds (prefill included). `threads` sets torch's intra-op
    threads for both (default: leave torch's setting). `path`: the GGUF file (default: the SmolLM2 download).
    """
    if threads is not None:
        torch.set_num_threads(threads)
    if path is None:
        from minihybrid.data.fetch import smollm2_gguf_path

        path = smollm2_gguf_path()
    path = Path(path)
    t0 = time.perf_counter()
    ours, tok = load_smollm2(path)
    load_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    theirs = load_transformers(path)
    load_theirs = time.perf_counter() - t0

    ids = torch.tensor([tok.encode(tok.chat_prompt(prompt))])
    run_ours = lambda: generate(ours, ids, n_new).tokens
    run_theirs = lambda: _hf_generate(theirs, ids, n_new)
    run_ours(), run_theirs()  # warm-up
    times_ours, times_theirs = [], []
    for _ in range(repeats):
        t, out_ours = _timed(run_ours)
        times_ours.append(t)
        t, out_theirs = _timed(run_theirs)
        times_theirs.append(t)
    s_ours, s_theirs = statistics.median(times_ours), statistics.median(times_theirs)
    pair_ratios = [t / o for o, t in zip(times_ours, times_theirs)]  # each repeat ran both back to back
    return {
        "n_new": n_new,
        "prompt_tokens": ids.shape[1],
        "threads": torch.get_num_threads(),
        "repeats": repeats,
        "minihybrid_s": s_ours,
        "transformers_s": s_theirs,
        "minihybrid_tok_s": n_new / s_ours,
        "transformers_tok_s": n_new / s_theirs,
        "ratio": s_theirs / s_ours,  # minihybrid tokens/s over transformers tokens/s
        "ratio_min": min(pair_ratios),
        "ratio_max": max(pair_ratios),
        "tokens_match": torch.equal(out_ours, out_theirs),
        "load_minihybrid_s": load_ours,
        "load_transformers_s": load_theirs,
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "torch": torch.__version__,
    }
