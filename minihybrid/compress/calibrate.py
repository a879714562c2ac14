"""Calibration for GPTQ and Wanda: token windows, and a walk through the blocks collecting input statistics.

Shapes: n windows of T tokens, d d_model, K a linear's input features.

The walk is block by block, as both reference implementations do it: the windows go through the embedding;
for block i, each linear's input statistic H = mean over all n*T tokens of 2 x x^T (K, K) is collected on
the current hidden states; `visit` compresses the block in place; then block i, now compressed, is rerun to
give the inputs of block i + 1. Later blocks thus see (and can compensate) the earlier blocks' errors.
diag(H) / 2 is the mean of x_j^2, so H serves GPTQ (the whole matrix) and Wanda (its diagonal) alike.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from functools import lru_cache

import torch
from torch import nn
from tqdm.auto import tqdm

from minihybrid.checks import check_int, check_token_ids
from minihybrid.data import corpus_text, load_shakespeare, smollm2_gguf_path
from minihybrid.side_inputs import SideInputs, reference_states

Visit = Callable[[int, nn.Module, dict[str, torch.Tensor]], None]


@lru_cache(maxsize=1)
def shakespeare_train_ids() -> torch.Tensor:
    """The Shakespeare train split in SmolLM2's tokenizer, (N,) torch.long (tokenized once per process)."""
    from minihybrid.pretrained import GGUFTokenizer

    tokenizer = GGUFTokenizer.from_gguf(smollm2_gguf_path())
    return torch.tensor(tokenizer.encode(corpus_text(load_shakespeare()["train"])))


def calibration_windows(n_windows: int, seq_len: int, seed: int = 0,
                        stream: torch.Tensor | None = None) -> torch.Tensor:
    """(n_windows, seq_len) torch.long: disjoint windows drawn at random (seeded) from a token stream.

    stream: (N,) token ids, cut into N // seq_len aligned windows of which n_windows are drawn; default the
    Shakespeare train split in SmolLM2's tokens (validation text stays held out for evaluation)."""
    check_int("n_windows", n_windows)
    check_int("seq_len", seq_len)
    stream = shakespeare_train_ids() if stream is None else stream
    check_token_ids("stream", stream, 1)
    available = stream.numel() // seq_len
    if n_windows > available:
        raise ValueError(f"the stream of {stream.numel()} tokens holds {available} windows of "
                         f"seq_len={seq_len}, fewer than n_windows={n_windows}")
    order = torch.randperm(available, generator=torch.Generator().manual_seed(seed))
    starts = order[:n_windows] * seq_len
    return stream[starts[:, None] + torch.arange(seq_len)]


class InputHessian:
    """H = 2 X^T X / n (K, K) float32 over the rows x (K,) of every tensor (..., K) passed to add()."""

    def __init__(self):
        self.sum: torch.Tensor | None = None
        self.count = 0

    def add(self, x: torch.Tensor) -> None:
        x = x.detach().reshape(-1, x.shape[-1]).float()
        self.sum = x.T @ x if self.sum is None else self.sum.addmm_(x.T, x)
        self.count += x.shape[0]

    def value(self) -> torch.Tensor:
        if self.sum is None:
            raise ValueError("no inputs were added")
        return 2 * self.sum / self.count


def _run_block(model: nn.Module, block: nn.Module, ids: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Block output (B, T, d) from hidden states x (B, T, d) of windows ids (B, T), as in HybridLM.forward."""
    side = SideInputs(model, model.embed(ids), ids.shape[1]) if block.side_inputs else None
    return block(x, side=side)


def _block_hessians(model: nn.Module, block: nn.Module, batches: list[torch.Tensor],
                   hidden: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    """{name within the block: H (K, K)} of each nn.Linear the block calls on these batches (B, T, d)."""
    if getattr(block.mixer, "reference_key", None) is not None:  # run a reference sequence now, unhooked
        reference_states(model, block.mixer, batches[0].shape[1])
    stats = {name: InputHessian() for name, module in block.named_modules() if isinstance(module, nn.Linear)}
    hooks = [block.get_submodule(name).register_forward_pre_hook(lambda _, args, s=stat: s.add(args[0]))
             for name, stat in stats.items()]
    try:
        for ids, x in zip(batches, hidden):
            _run_block(model, block, ids, x)
    finally:
        for hook in hooks:
            hook.remove()
    return {name: stat.value() for name, stat in stats.items() if stat.count}


@torch.no_grad()
def for_each_block(model: nn.Module, windows: torch.Tensor, visit: Visit,
                   batch_size: int = 8) -> torch.Tensor:
    """Walk a HybridLM's blocks in order with the calibration windows (n, T); return the final hidden states.

    For block i: visit(i, block, hessians), hessians = {linear name within the block, e.g. "mixer.q_proj":
    H (K, K) float32, the mean of 2 x x^T over all n*T tokens of that linear's inputs} (a linear the block
    never calls is left out); visit modifies the block in place, and the modified block makes the inputs of
    block i + 1. Hidden states are kept for all windows (n * T * d floats), batch_size windows run at a
    time. Returns (n, T, d): the last block's outputs, i.e. the final norm's inputs."""
    model.check_ids(windows, name="windows")
    check_int("batch_size", batch_size)
    widest = max((m.in_features for m in model.modules() if isinstance(m, nn.Linear)), default=0)
    if windows.numel() < widest:
        warnings.warn(f"{windows.numel()} calibration tokens give a {widest}-input linear a Hessian of rank "
                      f"at most {windows.numel()}: its statistics are mostly damping; calibrate on at least "
                      f"{widest} tokens", stacklevel=3)
    batches = list(windows.to(model.norm.weight.device).split(batch_size))
    hidden = [model.embed(ids) for ids in batches]
    for index, block in enumerate(tqdm(model.blocks, desc="calibrate", unit="block")):
        visit(index, block, _block_hessians(model, block, batches, hidden))
        hidden = [_run_block(model, block, ids, x) for ids, x in zip(batches, hidden)]
    return torch.cat(hidden)
