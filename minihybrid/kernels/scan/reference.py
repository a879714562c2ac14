"""The selective state-space scan, one token at a time: the readable specification of kernels/scan.

Mamba-2's SSM (Dao & Gu, 2024) with a scalar decay per head. For each head h, with state S (P, N):

    S_t = exp(dt_t * A_h) * S_{t-1} + dt_t * x_t B_t^T      (decay, then write the outer product)
    y_t = S_t C_t                                          (read the state with C)

Shapes (glossary in __init__.py): x (batch, T, H, P), dt (batch, T, H), A (H,), B and C (batch, T, G, N),
state (batch, H, P, N). Head h reads B/C group h // (H // G).
"""

from __future__ import annotations

import torch


def ssd_step(state, x, dt, A, B, C):
    """One token: returns y (batch, H, P) and the new state (batch, H, P, N); `state` is not modified.

    x (batch, H, P), dt (batch, H), A (H,), B and C (batch, G, N).
    Exercise twin: ex01.ssm_step (solutions/ex01_hybrid.py writes it by hand).
    """
    heads_per_group = x.shape[1] // B.shape[1]
    B = B.repeat_interleave(heads_per_group, dim=1)[:, :, None, :]  # (batch, H, 1, N)
    C = C.repeat_interleave(heads_per_group, dim=1)[..., None]  # (batch, H, N, 1)
    decay = torch.exp(dt * A)  # (batch, H), in (0, 1] since dt > 0 and A < 0
    state = decay[..., None, None] * state + (dt[..., None] * x)[..., None] * B
    return (state @ C)[..., 0], state


def ssd_reference(x, dt, A, B, C, initial_state=None, chunk_size=None):
    """y (batch, T, H, P) and the final state (batch, H, P, N): `ssd_step` over every token in order.

    Computed in float32 (float64 for float64 inputs); `chunk_size` is accepted and ignored (no chunks here).
    """
    dtype = x.dtype
    acc = torch.float64 if dtype == torch.float64 else torch.float32
    batch, length, heads, p = x.shape
    state = torch.zeros(batch, heads, p, B.shape[-1], dtype=acc, device=x.device)
    if initial_state is not None:
        state = initial_state.to(acc)
    x, dt, A, B, C = (t.to(acc) for t in (x, dt, A, B, C))
    ys = []
    for t in range(length):
        y, state = ssd_step(state, x[:, t], dt[:, t], A, B[:, t], C[:, t])
        ys.append(y)
    return torch.stack(ys, dim=1).to(dtype), state.to(dtype)
