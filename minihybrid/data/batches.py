"""Batches for next-token prediction: random ones for training, in-order ones for eval.

Two kinds of data: a token stream (N,), cut into windows (B, T) with y[b, t] = the token after x[b, t]
(the stream shifted by one); and examples, an (inputs, labels) pair of (num_examples, T) long tensors as
the synthetic tasks make them (labels aligned with inputs, IGNORE = -100 where a position is not scored),
whose rows are batched whole. Shapes: N tokens, B batch size, T sequence length.
"""

from collections.abc import Iterator

import torch

from minihybrid.checks import check_int, check_token_ids
from minihybrid.data.synthetic import IGNORE


def check_stream(ids: torch.Tensor, batch_size: int, seq_len: int, name: str = "ids",
                 vocab_size: int | None = None) -> None:
    """A 1-D torch.long stream (ids in 0..vocab_size-1 when given) long enough for one window of seq_len."""
    check_token_ids(name, ids, 1, vocab_size)
    check_int("batch_size", batch_size)
    check_int("seq_len", seq_len)
    if ids.numel() < seq_len + 1:
        raise ValueError(f"{name} has {ids.numel()} tokens; a window of seq_len={seq_len} needs "
                         f"{seq_len + 1}")


def sample_batch(
    ids: torch.Tensor, batch_size: int, seq_len: int, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """B windows at random offsets of the stream ids (N,): returns x, y of shape (B, T), y = x shifted by one.

    The offsets come from `generator`, so a seeded generator gives the same batches (and its state can be
    checkpointed).
    """
    check_stream(ids, batch_size, seq_len)
    starts = torch.randint(ids.numel() - seq_len, (batch_size,), generator=generator)
    windows = ids[starts[:, None] + torch.arange(seq_len + 1)]  # (B, T + 1)
    return windows[:, :-1], windows[:, 1:]


def iter_eval_batches(
    ids: torch.Tensor, batch_size: int, seq_len: int, max_windows: int | None = None
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Cover the stream ids (N,) in order with non-overlapping windows: yields x, y of shape (<=B, T).

    Window w is x = ids[w*T : (w+1)*T] and y = ids[w*T + 1 : (w+1)*T + 1]; there are (N - 1) // T windows
    (the last batch may be smaller), and the tail that does not fill a window is left out. With
    max_windows, only that many windows, spread evenly over the stream, are yielded.
    """
    check_stream(ids, batch_size, seq_len)
    check_int("max_windows", max_windows, optional=True)
    num_windows = (ids.numel() - 1) // seq_len
    x = ids[: num_windows * seq_len].reshape(num_windows, seq_len)
    y = ids[1 : num_windows * seq_len + 1].reshape(num_windows, seq_len)
    if max_windows is not None and max_windows < num_windows:
        keep = torch.linspace(0, num_windows - 1, max_windows).round().long()
        x, y, num_windows = x[keep], y[keep], max_windows
    return ((x[i : i + batch_size], y[i : i + batch_size]) for i in range(0, num_windows, batch_size))


def check_examples(examples, name: str = "examples", vocab_size: int | None = None) -> None:
    """An (inputs, labels) pair: both (num_examples, T) torch.long, ids in the vocabulary, at least one label
    scored (not IGNORE)."""
    if not (isinstance(examples, tuple) and len(examples) == 2):
        raise TypeError(f"{name} must be an (inputs, labels) tuple of tensors, got {type(examples).__name__}")
    inputs, labels = examples
    check_token_ids(f"{name} inputs", inputs, 2, vocab_size)
    if not isinstance(labels, torch.Tensor) or labels.shape != inputs.shape or labels.dtype != torch.long:
        raise ValueError(f"{name} labels must be a torch.long tensor of the inputs' shape "
                         f"{tuple(inputs.shape)}")
    scored = labels[labels != IGNORE]
    if scored.numel() == 0:
        raise ValueError(f"{name} has no scored label (every label is {IGNORE})")
    check_token_ids(f"{name} labels", scored, 1, vocab_size)


def sample_examples(examples, batch_size: int, generator: torch.Generator | None = None):
    """B rows of (inputs, labels) drawn at random (with replacement): x, y of shape (B, T)."""
    check_int("batch_size", batch_size)
    inputs, labels = examples
    rows = torch.randint(inputs.shape[0], (batch_size,), generator=generator)
    return inputs[rows], labels[rows]


def iter_example_batches(examples, batch_size: int, max_examples: int | None = None):
    """(inputs, labels) in order, batch_size rows at a time (the first max_examples rows when given)."""
    check_int("batch_size", batch_size)
    check_int("max_examples", max_examples, optional=True)
    inputs, labels = (t[:max_examples] for t in examples)
    starts = range(0, len(inputs), batch_size)
    return ((inputs[i : i + batch_size], labels[i : i + batch_size]) for i in starts)
