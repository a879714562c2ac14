"""The chunked SSD form of the scan in PyTorch: the differentiable training path ("torch" backend).

The sequence is cut into chunks of Q tokens (zero-padded at the end: dt = 0 there, so the decay is
exp(0) = 1 and nothing is written, which leaves the final state exact). With a_t = dt_t * A <= 0 and
segsum(a)[i, j] = a_{j+1} + ... + a_i for i >= j (-inf above the diagonal), four steps (Dao & Gu, 2024):

    1. intra-chunk   Y_diag[i] = sum_{j <= i in the chunk} (C_i . B_j) exp(segsum[i, j]) dt_j x_j
    2. chunk states  S_c = sum_j exp(a_{j+1} + ... + a_end) dt_j x_j B_j^T   (the state each chunk adds)
    3. inter-chunk   the states carried across chunks, starting from `initial_state`: a scan over the few
                     chunk boundaries, again with exp(segsum) of the per-chunk decay totals
    4. output        Y_off[i] = exp(a_start + ... + a_i) * S_in C_i  (what the carried state contributes)

segsum is built from a masked cumulative sum rather than cumsum[i] - cumsum[j] (which loses precision),
and only sums of a <= 0 are ever exponentiated, so nothing overflows.
Shapes: see __init__.py.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def segsum(a: torch.Tensor) -> torch.Tensor:
    """a (..., Q) -> (..., Q, Q): out[i, j] = a[j+1] + ... + a[i] for i >= j (0 on the diagonal), -inf above.

    Exercise twin: ex01.segsum.
    """
    q = a.shape[-1]
    strictly_lower = torch.ones(q, q, dtype=torch.bool, device=a.device).tril(-1)
    rows = a[..., :, None].expand(*a.shape, q).masked_fill(~strictly_lower, 0)  # rows[k, j] = a[k] if k > j
    out = rows.cumsum(dim=-2)  # out[i, j] = sum of a[k] for j < k <= i
    lower = torch.ones(q, q, dtype=torch.bool, device=a.device).tril()
    return out.masked_fill(~lower, float("-inf"))


def ssd_chunked(x, dt, A, B, C, initial_state=None, chunk_size: int = 64):
    """y (batch, T, H, P) and the final state (batch, H, P, N), in chunks of `chunk_size` tokens.

    Computed in float32 (float64 for float64 inputs); differentiable in every input. Inside, tensors are
    laid out (batch, c chunks, H or G, Q, ...) so that every step is a batched matmul; C B^T is computed once
    per group and shared by the group's heads.
    Exercise twin: ex01.ssd_chunked (segsum included).
    """
    dtype = x.dtype
    acc = torch.float64 if dtype == torch.float64 else torch.float32
    batch, length, heads, p = x.shape
    heads_per_group = heads // B.shape[2]
    x, dt, A, B, C = (t.to(acc) for t in (x, dt, A, B, C))
    a = dt * A  # (batch, T, H), <= 0
    xdt = x * dt[..., None]  # (batch, T, H, P)
    pad = -length % chunk_size  # padded positions get a = 0 (decay 1) and xdt = 0 (nothing written)
    a, xdt, B, C = (F.pad(t, (0, 0) * (t.dim() - 2) + (0, pad)).unflatten(1, (-1, chunk_size)).transpose(2, 3)
                    for t in (a, xdt, B, C))  # a (batch, c, H, Q); xdt (.., H, Q, P); B, C (.., G, Q, N)

    def per_head(t):  # (batch, c, G, ...) -> (batch, c, H, ...)
        return t.repeat_interleave(heads_per_group, dim=2) if heads_per_group > 1 else t

    decay = torch.exp(segsum(a))  # (batch, c, H, Q, Q): exp(a_{j+1} + ... + a_i)
    y_diag = (per_head(C @ B.transpose(-1, -2)) * decay) @ xdt  # 1. intra-chunk, (batch, c, H, Q, P)

    decay_to_end = decay[..., -1, :, None]  # (batch, c, H, Q, 1): exp(a_{j+1} + ... + a_{Q-1})
    states = (xdt * decay_to_end).transpose(-1, -2) @ per_head(B)  # 2. chunk states, (batch, c, H, P, N)

    if initial_state is None:
        initial_state = torch.zeros(batch, heads, p, B.shape[-1], dtype=acc, device=x.device)
    states = torch.cat([initial_state.to(acc)[:, None], states], dim=1)  # (batch, c + 1, H, P, N)
    a_cumsum = a.cumsum(dim=-1)  # (batch, c, H, Q)
    chunk_totals = F.pad(a_cumsum[..., -1].transpose(1, 2), (1, 0))  # (batch, H, c + 1)
    states = torch.einsum("bhzc,bchpn->bzhpn", torch.exp(segsum(chunk_totals)), states)  # 3. inter-chunk
    states_in, final_state = states[:, :-1], states[:, -1]

    y_off = (per_head(C) @ states_in.transpose(-1, -2)) * torch.exp(a_cumsum)[..., None]  # 4. output
    y = (y_diag + y_off).transpose(2, 3).flatten(1, 2)[:, :length]  # (batch, T, H, P)
    return y.to(dtype), final_state.to(dtype)
