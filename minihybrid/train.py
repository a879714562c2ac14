"""The training loop: AdamW, warmup + cosine schedule, gradient clipping, periodic eval, checkpoints.

Data are flat token streams (1-D LongTensors), or examples: (inputs, labels) pairs of (num_examples, T)
tensors from the synthetic tasks, scored only where a label is not IGNORE. Batches are sampled from the
train data with a seeded generator; validation scores fixed windows spread over the whole val stream (or
the first val examples).
Checkpoints are safetensors files holding the model, the optimizer moments, the step and the sampler
state, so a resumed run continues exactly where it stopped. Their tensors are saved from the CPU, so a
checkpoint loads onto any device.

Training runs on the model's device, or on `device` ('cpu' or 'cuda'; batches move there). Under
`torchrun --nproc_per_node=W` it is data-parallel (see distributed.py): every rank draws the same global
batch of B rows from the seeded generator and trains on its own B / W of them, so the loss curve is the
single process's up to float rounding; B must divide by W. Rank 0 alone shows progress, evaluates, calls
on_eval and writes the checkpoint; every rank resumes from it. For example, two CPU processes:

    torchrun --nproc_per_node=2 -m minihybrid train --steps 200 --batch-size 16 --checkpoint run.safetensors

Shapes: B global batch, W processes, T tokens per row, V vocabulary; logits (B / W, T, V) on each rank.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from minihybrid import distributed
from minihybrid.checks import check_int, check_number
from minihybrid.data import (
    IGNORE,
    check_examples,
    check_stream,
    iter_eval_batches,
    iter_example_batches,
    sample_batch,
    sample_examples,
)
from minihybrid.model import HybridLM
from minihybrid.runtime import check_device


@dataclass
class TrainConfig:
    steps: int = 1000
    batch_size: int = 16
    seq_len: int = 128
    lr: float = 3e-3
    min_lr_ratio: float = 0.1  # the cosine decays to lr * min_lr_ratio
    warmup_steps: int = 50
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float = 1.0
    eval_every: int = 100
    eval_batches: int = 8
    seed: int = 0
    checkpoint: str | None = None  # path of a .safetensors file, written at every eval and at the end
    progress: bool = True

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "seq_len", "eval_every", "eval_batches"):
            check_int(f"TrainConfig.{name}", getattr(self, name))
        check_int("TrainConfig.warmup_steps", self.warmup_steps, minimum=0)
        check_number("TrainConfig.lr", self.lr, inclusive=False)
        check_number("TrainConfig.grad_clip", self.grad_clip, inclusive=False)
        check_number("TrainConfig.weight_decay", self.weight_decay)
        if not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(f"TrainConfig.min_lr_ratio must be in [0, 1], got {self.min_lr_ratio!r}")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"TrainConfig.betas must be two numbers in [0, 1), got {self.betas!r}")


@dataclass
class TrainHistory:
    steps: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    eval_steps: list[int] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    tokens_per_second: float = 0.0


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warmup to cfg.lr, then cosine decay to cfg.lr * cfg.min_lr_ratio at cfg.steps."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * cosine)


def make_optimizer(model: HybridLM, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices only (not on norms' gains)."""
    params = list(dict.fromkeys(model.parameters()))  # tied weights once
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas)


@torch.no_grad()
def check_data(data, batch_size: int, seq_len: int, name: str, vocab_size: int | None = None) -> None:
    """A token stream long enough for one window, or an (inputs, labels) pair of examples."""
    if isinstance(data, tuple):
        check_examples(data, name, vocab_size)
    else:
        check_stream(data, batch_size, seq_len, name, vocab_size)


def _eval_batches(val_data, batch_size: int, seq_len: int, max_rows: int | None):
    if isinstance(val_data, tuple):
        return iter_example_batches(val_data, batch_size, max_rows)
    return iter_eval_batches(val_data, batch_size, seq_len, max_rows)


@torch.no_grad()
def accuracy(model: HybridLM, examples, batch_size: int = 64, per_example: bool = False) -> float:
    """Share of scored labels (not IGNORE) that are the model's top-1 prediction, over (inputs, labels).

    per_example: the share of examples whose scored labels are all right (e.g. every digit of a passkey).
    """
    check_examples(examples, "examples", model.config.vocab_size)
    was_training = model.training
    model.eval()
    right, count = 0, 0
    device = _device_of(model)
    for x, y in iter_example_batches(examples, batch_size):
        x, y = x.to(device), y.to(device)
        scored = y != IGNORE
        correct = (model(x).argmax(-1) == y) | ~scored
        if per_example:
            right += correct.all(dim=1).sum().item()
            count += x.shape[0]
        else:
            right += (correct & scored).sum().item()
            count += scored.sum().item()
    model.train(was_training)
    return right / count


@torch.no_grad()
def evaluate(model: HybridLM, val_data, batch_size: int, seq_len: int,
             max_batches: int | None = None) -> float:
    """Mean next-token cross-entropy (nats) over fixed windows of the val stream (or over val examples,
    counting only scored labels).

    With max_batches, max_batches * batch_size windows spread evenly over the whole stream (or the first
    that many examples) are scored.
    """
    check_data(val_data, batch_size, seq_len, "val_data", model.config.vocab_size)
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    max_rows = None if max_batches is None else max_batches * batch_size
    device = _device_of(model)
    for x, y in _eval_batches(val_data, batch_size, seq_len, max_rows):
        x, y = x.to(device), y.to(device)
        logits = model(x)
        total += torch.nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="sum",
                                                   ignore_index=IGNORE).item()
        count += (y != IGNORE).sum().item()
    model.train(was_training)
    if count == 0:
        raise ValueError(f"the first {max_rows} val examples have no scored label")
    return total / count


def train(model: HybridLM, train_ids, val_ids, cfg: TrainConfig,
          on_eval: Callable[[TrainHistory], None] | None = None, resume: bool = True,
          device=None) -> TrainHistory:
    """Train `model` on the token stream `train_ids` (N,), or on examples (inputs, labels); returns the loss
    history. cfg.seq_len is the window length of a stream (examples keep their own length).

    on_eval(history) is called after every evaluation (a notebook uses it for a live loss plot).
    With resume=True and an existing cfg.checkpoint, training continues from it.
    device: 'cpu' or 'cuda' (the model moves there and stays), or None for the model's own device. Under
    torchrun every rank returns the same history (train loss: the mean over ranks), and the process stays
    in the process group for its later runs (distributed.destroy leaves it).
    """
    for name, ids in (("train_ids", train_ids), ("val_ids", val_ids)):
        check_data(ids, cfg.batch_size, cfg.seq_len, name, model.config.vocab_size)
    distributed.check_batch("TrainConfig.batch_size", cfg.batch_size)
    device = distributed.rank_device(_device_of(model) if device is None else check_device(device))
    distributed.init(device)
    model.to(device)
    world = distributed.world_size()
    torch.manual_seed(cfg.seed)
    generator = torch.Generator().manual_seed(cfg.seed)
    optimizer = make_optimizer(model, cfg)
    history, start = TrainHistory(), 0
    if resume and cfg.checkpoint and Path(cfg.checkpoint).exists():
        start, history = load_checkpoint(cfg.checkpoint, model, optimizer, generator)
    model.train()
    parallel = distributed.wrap(model)  # forward through it, so that backward averages the ranks' gradients
    bar = tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, desc="train",
               disable=not (cfg.progress and distributed.is_main()))
    tokens, seconds = 0, 0.0
    for step in bar:
        t0 = time.perf_counter()
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, cfg)
        if isinstance(train_ids, tuple):
            x, y = sample_examples(train_ids, cfg.batch_size, generator)
        else:
            x, y = sample_batch(train_ids, cfg.batch_size, cfg.seq_len, generator)
        scored = (y != IGNORE).sum().item()  # in the global batch (B, T), drawn alike by every rank
        tokens += x.numel()
        x, y = (distributed.shard(t).to(device) for t in (x, y))  # this rank's (B / W, T)
        logits = parallel(x)
        # this rank's share of the global mean, times W: DDP's average over ranks is then the global mean
        summed = torch.nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="sum",
                                                   ignore_index=IGNORE)
        loss = summed / scored * world
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        seconds += time.perf_counter() - t0
        history.steps.append(step)
        history.train_loss.append(distributed.mean(loss.detach()))  # the global batch's mean loss
        history.tokens_per_second = tokens / seconds
        postfix = {"loss": f"{history.train_loss[-1]:.3f}", "tok/s": f"{history.tokens_per_second:,.0f}"}
        if (step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps:
            _evaluate_and_save(model, val_ids, cfg, on_eval, optimizer, generator, step + 1, history)
            postfix["val"] = f"{history.val_loss[-1]:.3f}"
        bar.set_postfix(postfix)
    return history


def _evaluate_and_save(model, val_ids, cfg: TrainConfig, on_eval, optimizer, generator, step: int,
                       history: TrainHistory) -> None:
    """Rank 0 evaluates, checkpoints and calls on_eval; the other ranks wait for its val loss."""
    history.eval_steps.append(step)
    if not distributed.is_main():
        history.val_loss.append(distributed.from_main(None, _device_of(model)))
        return
    history.val_loss.append(evaluate(model, val_ids, cfg.batch_size, cfg.seq_len, cfg.eval_batches))
    if cfg.checkpoint:
        save_checkpoint(cfg.checkpoint, model, optimizer, generator, step, history)
    if on_eval is not None:
        on_eval(history)
    distributed.from_main(history.val_loss[-1], _device_of(model))


def save_checkpoint(path, model, optimizer, generator, step: int, history: TrainHistory) -> None:
    """Write model + optimizer state to a safetensors file atomically (a crash never leaves half a file)."""
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if model.config.tie_embeddings:
        tensors.pop("model.head.weight", None)
    for i, p in enumerate(_params(optimizer)):
        for name, value in optimizer.state.get(p, {}).items():
            value = value.detach().cpu()
            tensors[f"optim.{i}.{name}"] = value.reshape(-1).clone() if value.dim() == 0 else value
    tensors["generator_state"] = generator.get_state()
    metadata = {"step": str(step), "history": json.dumps(asdict(history)),
                "model_config": json.dumps({k: v for k, v in asdict(model.config).items() if k != "layers"},
                                           default=str)}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp), metadata=metadata)
    os.replace(tmp, path)


def load_checkpoint(path, model, optimizer=None, generator=None) -> tuple[int, TrainHistory]:
    """Restore a checkpoint written by save_checkpoint; returns (step, history)."""
    try:
        tensors = load_file(str(path))
        with safe_open(str(path), "pt") as f:
            metadata = f.metadata()
    except (SafetensorError, OSError) as err:
        raise ValueError(f"checkpoint {path} is not a readable safetensors file: {err}") from err
    state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as err:  # same names, other shapes
        raise ValueError(f"checkpoint {path} does not fit this model: {err}") from err
    missing = [k for k in missing if not (k == "head.weight" and model.config.tie_embeddings)]
    if missing or unexpected:
        raise ValueError(
            f"checkpoint {path} does not fit this model: missing {missing}, unexpected {unexpected}")
    if optimizer is not None:
        for i, p in enumerate(_params(optimizer)):
            entries = {k.split(".", 2)[2]: v for k, v in tensors.items() if k.startswith(f"optim.{i}.")}
            if entries:
                entries = {k: (v.reshape(()) if k == "step" else v.to(p.device)) for k, v in entries.items()}
                optimizer.state[p] = entries
    if generator is not None:
        generator.set_state(tensors["generator_state"])
    return int(metadata["step"]), TrainHistory(**json.loads(metadata["history"]))


def _device_of(model) -> torch.device:
    return next(model.parameters()).device


def _params(optimizer):
    return [p for group in optimizer.param_groups for p in group["params"]]
