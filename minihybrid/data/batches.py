"""Batches of a token stream for next-token prediction: random windows for training, in-order for eval.

Shapes: N tokens in the stream, B batch size, T sequence length. A batch is (x, y), both (B, T) long, with
y[b, t] = the token after x[b, t] (the stream shifted by one).
"""

from collections.abc import Iterator

import torch

from minihybrid.checks import check_int, check_token_ids


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
