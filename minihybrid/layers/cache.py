"""Per-layer decode caches.

Every KV cache is written at explicit absolute positions (the model passes `start_pos`), so a layer
that was skipped for some tokens (layer skipping) simply has a gap that the next full pass over those
tokens fills, and `rollback(pos)` forgets everything at positions >= pos (speculative decoding);
`check_rollback(pos)` raises beforehand when that is impossible.

    KVCache        attention keys/values, (B, Hkv, capacity, D) each; a ring buffer when windowed
    RecurrentState a fixed-size state (the SSM mixer, linear-attention mixers)
    CompositeCache named parts, for a mixer built from other mixers (the intra-layer hybrid)
    NoCache        nothing to keep (a mixer that does not mix tokens)
"""

from __future__ import annotations

import torch


class KVCache:
    """Keys and values of one attention layer.

    Full attention: capacity = max_len, token p lives in slot p.
    Sliding window w: capacity = min(max_len, w + SLACK), token p lives in slot p % capacity, and
    `key_pos` (capacity,) holds each slot's absolute position (-1 = empty). The slack lets a speculative
    decoder roll back up to `SLACK` tokens.
    """

    SLACK = 64

    def __init__(self, batch, n_kv_heads, head_dim, max_len, *, window=None, dtype=torch.float32,
                 device=None):
        self.window = window
        self.max_len = max_len
        capacity = self.capacity_for(max_len, window)
        shape = (batch, n_kv_heads, capacity, head_dim)
        self.k = torch.zeros(shape, dtype=dtype, device=device)
        self.v = torch.zeros(shape, dtype=dtype, device=device)
        self.key_pos = torch.full((capacity,), -1, dtype=torch.long, device=device)
        self.length = 0  # one past the highest position held
        self.written = 0  # one past the highest position ever written (rollback does not lower it)

    @classmethod
    def capacity_for(cls, max_len: int, window: int | None) -> int:
        """Slots kept for a sequence of max_len tokens."""
        return max_len if window is None else min(max_len, window + cls.SLACK)

    @property
    def capacity(self) -> int:
        return self.k.shape[2]

    @property
    def nbytes(self) -> int:
        return self.k.nbytes + self.v.nbytes

    def update(self, k: torch.Tensor, v: torch.Tensor, start_pos: int):
        """Store k, v: (B, Hkv, T, D) at positions start_pos.. and return what the new queries attend to.

        Returns (keys, values, key_positions): keys/values (B, Hkv, Tk, D); key_positions is None when
        the keys are positions 0..Tk-1 in order (then query i sits at Tk - T + i), else (Tk,) absolute.

        Exercise twin: ex00.decode_step (one token: this write, then attention over the returned keys).
        """
        t = k.shape[2]
        end = self._fit(start_pos, t)
        if self.window is None:
            self.k[:, :, start_pos:end] = k
            self.v[:, :, start_pos:end] = v
            self.length = end
            return self.k[:, :, :end], self.v[:, :, :end], None
        # windowed ring buffer: attend over the old slots plus the new keys, then store the new keys
        old = (self.key_pos >= 0) & (self.key_pos < start_pos)
        new_pos = torch.arange(start_pos, end, device=k.device)
        keys = torch.cat((self.k[:, :, old], k), dim=2)
        values = torch.cat((self.v[:, :, old], v), dim=2)
        key_pos = torch.cat((self.key_pos[old], new_pos))
        keep = slice(max(0, t - self.capacity), t)
        slots = new_pos[keep] % self.capacity
        self.k[:, :, slots] = k[:, :, keep]
        self.v[:, :, slots] = v[:, :, keep]
        self.key_pos[slots] = new_pos[keep]
        self.length = end
        self.written = max(self.written, end)
        return keys, values, key_pos

    def claim(self, start_pos: int, t: int) -> tuple[torch.Tensor, torch.Tensor]:
        """For a kernel that writes positions start_pos..start_pos + t - 1 itself (full attention only):
        record them as ``update`` would and return the whole k and v buffers (B, Hkv, capacity, D)."""
        if self.window is not None:
            raise ValueError("a windowed cache is a ring buffer: write it with update()")
        self.length = self._fit(start_pos, t)
        return self.k, self.v

    def _fit(self, start_pos: int, t: int) -> int:
        """start_pos + t, after checking that those positions fit."""
        end = start_pos + t
        if end > self.max_len:
            raise ValueError(f"cache holds {self.max_len} positions; writing up to {end} overflows it")
        return end

    def check_rollback(self, pos: int) -> None:
        """Raise ValueError unless rollback(pos) can restore the cache exactly."""
        if self.window is None:
            return
        oldest_kept = self.written - self.capacity  # the ring overwrote every position below this
        oldest_needed = max(pos - self.window + 1, 0)  # the token at pos sees keys oldest_needed..pos-1
        if oldest_needed < min(pos, oldest_kept):
            raise ValueError(f"cannot roll back to {pos}: the window cache already overwrote position "
                             f"{oldest_needed} (it keeps {KVCache.SLACK} tokens of slack)")

    def rollback(self, pos: int) -> None:
        """Forget positions >= pos.

        Exercise twin: ex04.rollback_ring (the windowed ring buffer's rollback and its check)."""
        self.check_rollback(pos)
        if self.window is not None:
            self.key_pos[self.key_pos >= pos] = -1
        self.length = min(self.length, pos)


class RecurrentState:
    """A fixed-size recurrent state (e.g. an SSM's (B, H, N, P) state) with snapshots for rollback.

    Mixers with a recurrent state update `tensors` in place and advance `length`; `snapshot()` remembers
    the state at the current length so that `rollback(length)` can restore it later. Unlike a KV cache,
    a state cannot be refilled for tokens a skipped layer missed: layer skipping must not skip such layers.
    """

    def __init__(self, **tensors: torch.Tensor):
        self.tensors = tensors
        self.length = 0
        self._snapshots: dict[int, dict[str, torch.Tensor]] = {}

    @property
    def nbytes(self) -> int:
        return sum(t.nbytes for t in self.tensors.values())

    def check_next(self, owner: str, batch: int, start_pos: int) -> None:
        """Raise ValueError unless a call with `batch` sequences at start_pos continues this state."""
        built = next(iter(self.tensors.values())).shape[0]
        if built != batch:
            raise ValueError(f"{owner}: the state was built for batch {built}, the input has batch {batch}")
        if start_pos != self.length:
            raise ValueError(f"{owner}: the state holds {self.length} tokens, so the next token is at "
                             f"position {self.length}, got start_pos={start_pos} (a recurrent layer cannot "
                             "be skipped for some tokens)")

    def snapshot(self) -> None:
        self._snapshots[self.length] = {k: t.clone() for k, t in self.tensors.items()}

    def check_rollback(self, pos: int) -> None:
        if pos != self.length and pos not in self._snapshots:
            raise ValueError(f"no snapshot at position {pos}; call snapshot() before decoding past it")

    def rollback(self, pos: int) -> None:
        self.check_rollback(pos)
        if pos == self.length:
            return
        for name, saved in self._snapshots[pos].items():
            self.tensors[name].copy_(saved)
        self._snapshots = {p: s for p, s in self._snapshots.items() if p <= pos}
        self.length = pos


class CompositeCache:
    """The caches of a mixer made of parts (e.g. an intra-layer hybrid's KVCache and RecurrentState), by name.

    A rollback is checked on every part first, so a refused one changes nothing.
    """

    def __init__(self, **parts):
        self.parts = parts

    def __getitem__(self, name: str):
        return self.parts[name]

    @property
    def nbytes(self) -> int:
        return sum(part.nbytes for part in self.parts.values())

    def snapshot(self) -> None:
        for part in self.parts.values():
            if hasattr(part, "snapshot"):
                part.snapshot()

    def check_rollback(self, pos: int) -> None:
        for part in self.parts.values():
            part.check_rollback(pos)

    def rollback(self, pos: int) -> None:
        self.check_rollback(pos)
        for part in self.parts.values():
            part.rollback(pos)


class NoCache:
    """The cache of a mixer that looks at each token alone: holds nothing, rolls back anywhere."""

    nbytes = 0

    def check_rollback(self, pos: int) -> None:
        pass

    def rollback(self, pos: int) -> None:
        pass
