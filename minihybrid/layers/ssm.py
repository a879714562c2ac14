"""Mamba-2's selective state-space mixer ("M"), as the reference code defines it (state-spaces/mamba,
modules/mamba2.py).

Dimensions: B batch, T tokens, d d_model, E = d_inner (expand * d), H SSM heads of P channels (E = H P),
G B/C groups, N d_state, K conv kernel width.

    z, xBC, dt = in_proj(u)                       (B, T, E), (B, T, E + 2 G N), (B, T, H); no bias
    xBC = silu(causal depthwise conv_K(xBC))      x, B, C only (z and dt skip the conv)
    x, B, C = split(xBC)                          (B, T, H, P), (B, T, G, N), (B, T, G, N)
    A = -exp(A_log)                               one scalar decay per head, A_log ~ log U(1, 16)
    dt = softplus(dt + dt_bias)                   softplus(dt_bias) log-uniform in [1e-3, 0.1]
    y = SSD(x, dt, A, B, C) + D x                 kernels/scan; D (H,) starts at 1
    out = out_proj(rmsnorm(y * silu(z)))          the gated RMSNorm (normalise after gating)

Three forms of the scan compute the same y: the token-by-token recurrence (the "reference" scan backend, the
specification), the chunked SSD form (the "torch" backend, used for training) and `ssd_step`, the recurrent
step decoding uses. The decode cache is a fixed-size `RecurrentState`: the last K - 1 inputs of the conv and
the SSM state (B, H, P, N), whatever the context length.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from minihybrid.checks import check_int, check_number
from minihybrid.kernels.dispatch import DIFFERENTIABLE, needs_grad
from minihybrid.kernels.scan import BACKENDS, ssd_scan, ssd_step
from minihybrid.layers import register
from minihybrid.layers.cache import RecurrentState
from minihybrid.layers.norm import RMSNorm


@register("M")
class Mamba2(nn.Module):
    """Mamba-2 mixer; options as in the reference: d_state N, expand, head_dim P (None: the model's head_dim),
    n_groups G, d_conv K, chunk_size of the chunked scan, scan_backend (a kernels.scan backend), d_inner
    (None: expand * d_model), and the dt range of the initialisation."""

    def __init__(self, config, layer_idx: int, d_state: int = 64, expand: int = 2,
                 head_dim: int | None = None, n_groups: int = 1, d_conv: int = 4, chunk_size: int = 64,
                 scan_backend: str = "auto", d_inner: int | None = None, dt_min: float = 1e-3,
                 dt_max: float = 0.1):
        super().__init__()
        for name, value in (("d_state", d_state), ("expand", expand), ("n_groups", n_groups),
                            ("d_conv", d_conv), ("chunk_size", chunk_size)):
            check_int(name, value)
        check_int("head_dim", head_dim, optional=True)
        check_int("d_inner", d_inner, optional=True)
        check_number("dt_min", dt_min, inclusive=False)
        if not dt_min <= dt_max:
            raise ValueError(f"dt_min={dt_min} must be <= dt_max={dt_max}")
        if scan_backend not in BACKENDS:
            raise ValueError(f"scan_backend {scan_backend!r} is not one of {', '.join(map(repr, BACKENDS))}")
        self.layer_idx = layer_idx
        self.d_inner = expand * config.d_model if d_inner is None else d_inner
        self.head_dim = config.head_dim if head_dim is None else head_dim
        if self.d_inner % self.head_dim:
            raise ValueError(f"d_inner={self.d_inner} must be a multiple of head_dim={self.head_dim}")
        self.n_heads = self.d_inner // self.head_dim
        if self.n_heads % n_groups:
            raise ValueError(f"the {self.n_heads} SSM heads must split evenly into n_groups={n_groups}")
        self.d_state, self.n_groups, self.d_conv = d_state, n_groups, d_conv
        self.chunk_size, self.scan_backend = chunk_size, scan_backend
        self.conv_dim = self.d_inner + 2 * n_groups * d_state
        self.in_proj = nn.Linear(config.d_model, self.d_inner + self.conv_dim + self.n_heads, bias=False)
        self.conv1d = nn.Conv1d(self.conv_dim, self.conv_dim, d_conv, groups=self.conv_dim)
        self.A_log = nn.Parameter(torch.empty(self.n_heads).uniform_(1, 16).log())
        dt = torch.exp(torch.empty(self.n_heads).uniform_(math.log(dt_min), math.log(dt_max))).clamp(min=1e-4)
        self.dt_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))  # softplus(dt_bias) = dt
        self.D = nn.Parameter(torch.ones(self.n_heads))
        self.norm = RMSNorm(self.d_inner, config.norm_eps)
        self.out_proj = nn.Linear(self.d_inner, config.d_model, bias=False)

    def forward(self, u: torch.Tensor, cache: RecurrentState | None = None,
                start_pos: int = 0) -> torch.Tensor:
        """u: (B, T, d_model) for tokens at positions start_pos.. -> (B, T, d_model).

        With a cache, the tokens continue the sequence the state holds (start_pos must equal its length).
        """
        if cache is not None:
            cache.check_next(f"layer {self.layer_idx} (SSM)", u.shape[0], start_pos)
        z, xbc, dt = self.in_proj(u).split([self.d_inner, self.conv_dim, self.n_heads], dim=-1)
        xbc = F.silu(self._conv(xbc, cache))
        bc_width = self.n_groups * self.d_state
        x, B, C = xbc.split([self.d_inner, bc_width, bc_width], dim=-1)
        x = x.unflatten(-1, (self.n_heads, self.head_dim))
        B, C = (t_.unflatten(-1, (self.n_groups, self.d_state)) for t_ in (B, C))
        dt = F.softplus(dt + self.dt_bias)  # (B, T, H)
        A = -torch.exp(self.A_log.float()).to(u.dtype)
        y = self._scan(x, dt, A, B, C, cache)
        y = y + self.D[:, None] * x
        gated = y.flatten(-2) * F.silu(z)
        return self.out_proj(self.norm(gated))

    def _conv(self, xbc: torch.Tensor, cache: RecurrentState | None) -> torch.Tensor:
        """Causal depthwise conv over (B, T, conv_dim); the left context is the cached last K - 1 inputs
        (zeros at the start of a sequence)."""
        t = xbc.shape[1]
        if cache is None:
            history = xbc.new_zeros(xbc.shape[0], self.d_conv - 1, self.conv_dim)
        else:
            history = cache.tensors["conv"]
        full = torch.cat([history, xbc], dim=1)  # (B, K - 1 + T, conv_dim)
        if cache is not None and self.d_conv > 1:
            history.copy_(full[:, full.shape[1] - (self.d_conv - 1):])
        if t == 1:  # a decode step: one dot product per channel is much cheaper than a conv call
            return (full * self.conv1d.weight[:, 0].T).sum(dim=1, keepdim=True) + self.conv1d.bias
        out = F.conv1d(full.transpose(1, 2), self.conv1d.weight, self.conv1d.bias, groups=self.conv_dim)
        return out.transpose(1, 2)[:, -t:]

    def _scan(self, x, dt, A, B, C, cache):
        """The SSM over this call's tokens: the recurrent step for one cached token, else the scan op."""
        if self.scan_backend not in DIFFERENTIABLE and not needs_grad(x, dt, B, C):
            x, dt, B, C = (t.contiguous() for t in (x, dt, B, C))  # in_proj's output views -> dense rows
        if cache is None:
            return self._sequence(x, dt, A, B, C, None)[0]
        state = cache.tensors["ssm"]
        if x.shape[1] == 1:
            y, new_state = self._step(state, x[:, 0], dt[:, 0], A, B[:, 0], C[:, 0])
            y = y[:, None]
        else:
            y, new_state = self._sequence(x, dt, A, B, C, state)
        state.copy_(new_state)
        cache.length += x.shape[1]
        return y

    def _step(self, state, x, dt, A, B, C):
        """One token: (y, new_state) by `ssd_step` (plug_in can swap in ex01.ssm_step)."""
        return ssd_step(state, x, dt, A, B, C)

    def _sequence(self, x, dt, A, B, C, initial_state):
        """Many tokens: (y, final_state) by the scan op (plug_in can swap in ex01.ssd_chunked)."""
        return ssd_scan(x, dt, A, B, C, initial_state=initial_state, chunk_size=self.chunk_size,
                        backend=self.scan_backend)

    def init_cache(self, batch: int, max_len: int, dtype=torch.float32, device=None) -> RecurrentState:
        """Conv inputs (batch, K - 1, conv_dim) and SSM state (batch, H, P, N); max_len does not matter."""
        return RecurrentState(
            conv=torch.zeros(batch, self.d_conv - 1, self.conv_dim, dtype=dtype, device=device),
            ssm=torch.zeros(batch, self.n_heads, self.head_dim, self.d_state, dtype=dtype, device=device))

    def cache_bytes(self, seq_len: int, dtype_bytes: int = 4) -> int:
        """The state's bytes for one sequence: the same at every length."""
        return ((self.d_conv - 1) * self.conv_dim + self.n_heads * self.head_dim * self.d_state) * dtype_bytes
