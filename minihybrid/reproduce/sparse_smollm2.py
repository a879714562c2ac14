"""The sparse reproduction's training-free half: SmolLM2-135M with every block switchable (mixer "B").

The same weights run dense and sparse at each context length, at two budgets (`budget_sizes`):
    paper-scaled  the paper's proportions at 32K (a 2048-token window = 1/16 of the context, 64 extra blocks
                  = 1/8), scaled to the length: about 19% of the context attended
    small         a quarter of that window and of the extra blocks: about 6% of 8K
Measured: held-out Shakespeare perplexity of the same target tokens (dense / sparse as "retention", the
paper's 98.1% and 99.7% are score ratios), the prefill wall time, and passkey retrieval (all digits right,
teacher-forced) by depth and length.
"""

from __future__ import annotations

import math
import time

import torch
from tqdm.auto import tqdm

from minihybrid.config import LayerSpec
from minihybrid.data import IGNORE, corpus_text, load_shakespeare, passkey
from minihybrid.kernels.block_sparse.select import blocks_per_query
from minihybrid.layers.switchable import set_mode

BUDGETS = ("paper-scaled", "small")


def budget_sizes(n: int, budget: str, block_size: int = 64) -> dict[str, int]:
    """Selection sizes of `budget` at n tokens (kernel and stride: block / 2 and / 4, as in 32, 16, 64)."""
    share = {"paper-scaled": 1, "small": 4}[budget]  # the small budget divides window and top-k by 4
    window = max(block_size, n // 16 // share // block_size * block_size)
    topk = max(1, n // 8 // share // block_size)
    return {"kernel_size": block_size // 2, "stride": block_size // 4, "block_size": block_size,
            "init_blocks": 1, "window": window, "topk": topk}


def attended_share(n: int, sizes: dict) -> float:
    """The share of n tokens a query at the end attends to under these sizes."""
    return min(1.0, blocks_per_query(**sizes) * sizes["block_size"] / n)


def load_model(max_len: int):
    """(SmolLM2-135M with every block switchable, its tokenizer); the held-out Shakespeare token ids."""
    from minihybrid.pretrained import load_smollm2

    model, tokenizer = load_smollm2(pattern=[LayerSpec("B")] * 30, max_seq_len=max_len)
    ids = torch.tensor(tokenizer.encode(corpus_text(load_shakespeare()["validation"])))
    return model.eval(), tokenizer, ids


def configure(model, n: int, mode: str, block_size: int) -> None:
    """mode "dense", or a budget name: every block sparse with that budget's sizes at n tokens."""
    if mode == "dense":
        set_mode(model, "dense")
    else:
        set_mode(model, "sparse", **budget_sizes(n, mode, block_size))


@torch.no_grad()
def window_nll(model, window: torch.Tensor, chunk: int) -> tuple[float, float]:
    """(mean next-token NLL over window (n + 1 ids), seconds): prefilled `chunk` tokens at a time through the
    decode cache, so the logits of one chunk are in memory at a time."""
    n = window.numel() - 1
    cache, total = model.init_cache(1, n), 0.0
    start = time.perf_counter()
    for i in range(0, n, chunk):
        logits = model(window[None, i:min(n, i + chunk)], cache=cache)[0]
        total += torch.nn.functional.cross_entropy(logits, window[i + 1:min(n, i + chunk) + 1],
                                                   reduction="sum").item()
    return total / n, time.perf_counter() - start


@torch.no_grad()
def passkey_found(model, inputs: torch.Tensor, labels: torch.Tensor) -> bool:
    """Whether the model's top-1 predicts every answer token of one passkey example (1, T)."""
    answer = int((labels != IGNORE).sum())
    cache = model.init_cache(1, inputs.shape[1])
    model(inputs[:, :-answer], cache=cache, last_only=True)
    logits = model(inputs[:, -answer:], cache=cache)
    return bool((logits.argmax(-1) == labels[:, -answer:]).all())


def perplexities(model, ids: torch.Tensor, lengths, windows: int, block_size: int, chunk: int) -> list[dict]:
    """One row per (length, window, mode): NLL and seconds; windows are spread over the held-out ids."""
    rows = []
    jobs = [(n, w) for n in lengths for w in range(windows)]
    for n, w in tqdm(jobs, desc="SmolLM2 perplexity"):
        start = w * (ids.numel() - n - 1) // max(1, windows - 1) if windows > 1 else 0
        window = ids[start:start + n + 1]
        for mode in ("dense", *BUDGETS):
            configure(model, n, mode, block_size)
            nll, seconds = window_nll(model, window, chunk)
            rows.append({"length": n, "window": w, "mode": mode, "nll": nll, "ppl": math.exp(nll),
                         "seconds": seconds})
    return rows


def passkeys(model, tokenizer, lengths, depths, trials: int, block_size: int) -> list[dict]:
    """One row per (length, depth, mode): the share of `trials` passkeys found."""
    rows = []
    jobs = [(n, d) for n in lengths for d in depths]
    for n, depth in tqdm(jobs, desc="SmolLM2 passkey"):
        inputs, labels = passkey(trials, n, depth, tokenizer, seed=int(1000 * depth) + n)
        for mode in ("dense", *BUDGETS):
            configure(model, n, mode, block_size)
            found = [passkey_found(model, inputs[i:i + 1], labels[i:i + 1]) for i in range(trials)]
            rows.append({"length": n, "depth": depth, "mode": mode, "accuracy": sum(found) / trials})
    return rows
