"""Numba CPU scan: reference.py's recurrence compiled, parallel over (batch, head), sequential over tokens.

Shapes (glossary in __init__.py): x (batch, T, H, P), dt (batch, T, H), A (H,), B and C (batch, T, G, N),
initial_state and state_out (batch, H, P, N), y_out (batch, T, H, P); all C-contiguous, one float dtype.

Each (batch, head) is one parallel task with its own state S (P, N) in a local array, so tasks share nothing.
A task walks the tokens in order; per token it computes the decay exp(dt A) once, then makes ONE pass over
the state, row p by row p: S[p, :] = decay S[p, :] + (dt x[p]) B and, while that row is in registers,
y[p] = S[p, :] . C. The inner loop runs along N, the contiguous axis of S, B and C, so it vectorizes (AVX2:
8 float32 lanes with FMA; fast-math "reassoc" lets the dot product keep vector partial sums). The state
(16 KiB at P = N = 64, float32) stays in L1 cache for the whole sequence: about 3 P N flops per token and
head, all on cached data. That is why this plain scan beats the chunked PyTorch form, which does more
arithmetic per token (the (Q, Q) intra-chunk products, then the chunk states), writes every intermediate to
memory, and whose inter-chunk step grows with the square of the number of chunks.
Arithmetic is in the input dtype (float32 or float64). Inputs are not checked here: ``__init__.py`` validates
them first.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from minihybrid.kernels import numba_cpu


@njit(cache=True, fastmath={"reassoc", "contract"})
def _token(state, x_t, dt_t, a, b_t, c_t, y_t):
    """One token of one head: state (P, N) updated in place, y_t (P,) <- the new state read with c_t (N,)."""
    decay = math.exp(dt_t * a)
    for p in range(state.shape[0]):
        row = state[p]
        xdt = dt_t * x_t[p]
        acc = y_t.dtype.type(0.0)
        for n in range(row.shape[0]):
            s = decay * row[n] + xdt * b_t[n]
            row[n] = s
            acc += s * c_t[n]
        y_t[p] = acc


@njit(parallel=True, cache=True)
def _scan_kernel(x, dt, A, B, C, initial_state, y_out, state_out):
    """Write y and the final state; one parallel task per (batch, head)."""
    batch, length, heads, _ = x.shape
    heads_per_group = heads // B.shape[2]
    for item in prange(batch * heads):
        b, h = divmod(np.int64(item), heads)  # prange indices may be unsigned
        g = h // heads_per_group
        state = initial_state[b, h].copy()  # (P, N), private to this task
        for t in range(length):
            _token(state, x[b, t, h], dt[b, t, h], A[h], B[b, t, g], C[b, t, g], y_out[b, t, h])
        state_out[b, h] = state


def ssd_cpu(x, dt, A, B, C, initial_state, y_out, state_out):
    """Numba scan on checked contiguous CPU tensors (float32/float64); fills ``y_out`` and ``state_out``."""
    numba_cpu.run(_scan_kernel, x, dt, A, B, C, initial_state, y_out, state_out)
    return y_out, state_out
