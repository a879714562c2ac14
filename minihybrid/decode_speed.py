"""Greedy decoding speed of SmolLM2-135M: minihybrid's HybridLM vs transformers' LlamaForCausalLM.

Used by the baseline reproduction, notebook 00 and benchmarks/bench_decode.py, so all three print the same
number.

Both load the same GGUF file (dequantized to float32), decode the same chat prompt greedily with a KV cache
for the same number of new tokens on the same torch threads. After one warm-up run each (whose generated ids
must agree), the two are timed by `minihybrid.timing.compare`, interleaved, `repeats` times; the figure is
the median end-to-end time (prefill + n_new tokens) and the spread of the per-repeat ratios.
"""

from __future__ import annotations

import platform
import time
from pathlib import Path

import torch

from minihybrid.generate import generate
from minihybrid.pretrained import load_smollm2
from minihybrid.timing import compare, ratio

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
    runs = {"minihybrid": lambda: generate(ours, ids, n_new).tokens,
            "transformers": lambda: _hf_generate(theirs, ids, n_new)}
    tokens_match = torch.equal(runs["minihybrid"](), runs["transformers"]())  # also the warm-up
    timings = compare(runs, repeats=repeats, warmup=0)
    speedup = ratio(timings["transformers"], timings["minihybrid"])  # our tokens/s over theirs, per repeat
    s_ours, s_theirs = timings["minihybrid"].median, timings["transformers"].median
    return {
        "n_new": n_new,
        "prompt_tokens": ids.shape[1],
        "threads": torch.get_num_threads(),
        "repeats": repeats,
        "minihybrid_s": s_ours,
        "transformers_s": s_theirs,
        "minihybrid_tok_s": n_new / s_ours,
        "transformers_tok_s": n_new / s_theirs,
        "ratio": speedup.median,  # minihybrid tokens/s over transformers tokens/s
        "ratio_min": speedup.low,
        "ratio_max": speedup.high,
        "tokens_match": tokens_match,
        "load_minihybrid_s": load_ours,
        "load_transformers_s": load_theirs,
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "torch": torch.__version__,
    }
