"""Approximate attention ("T"): softmax's exp replaced by its second-order Taylor expansion (Based's form).

Deconstructing Attention (arXiv 2510.11602), the variant that relaxes the *mathematical form* by
approximation. Queries and keys are projected to a small feature dim f per head (Based uses 16), then with
s = q . k / sqrt(f):

    exp(s) ~ 1 + s + s^2 / 2 = phi(q) . phi(k),   phi(x) = [1, x / f^(1/4), vec(x x^T) / (sqrt(2) sqrt(f))]
    o_i = sum_{j<=i} (phi(q_i) . phi(k_j)) v_j / sum_{j<=i} phi(q_i) . phi(k_j)

1 + s + s^2/2 >= 1/2, so the normaliser never vanishes. Two ways to compute the same o:

    quadratic  the (T, T) matrix 1 + s + s^2/2, masked causally            O(T^2 f) time, O(T^2) memory
    linear     running sums S_i = sum_{j<=i} phi(k_j) v_j^T  (F, Dv) and z_i = sum_{j<=i} phi(k_j)  (F,)
               with F = 1 + f + f^2, o_i = phi(q_i) S_i / phi(q_i) . z_i   O(T F Dv) time, a fixed state

The linear form runs in chunks of `chunk_size` tokens (the quadratic form inside a chunk, the running sums
between chunks) and decodes one token at a time with (S, z) as its state.

Dimensions: B batch, H heads, T tokens, f feature dim, F = 1 + f + f^2, Dv value head dim.
Choices where the paper is ambiguous: Based's projections (q, k to f = 16 per head, v at the model's head
dim); no rotary embedding and no extra short convolution or sliding window (Based adds those; here the
variant stands alone, as the paper's uniform configuration needs).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from minihybrid.checks import check_int
from minihybrid.layers import register
from minihybrid.layers.cache import RecurrentState


def taylor_features(x: torch.Tensor) -> torch.Tensor:
    """x (..., f) -> phi(x) (..., 1 + f + f^2) with phi(q) . phi(k) = 1 + s + s^2/2, s = q . k / sqrt(f).

    Exercise twin: ex02.taylor_features.
    """
    f = x.shape[-1]
    second = (x[..., :, None] * x[..., None, :]).flatten(-2) / (math.sqrt(2) * math.sqrt(f))
    return torch.cat([torch.ones_like(x[..., :1]), x / f ** 0.25, second], dim=-1)


def taylor_weights(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """q, k (B, H, T, f) -> the normalised causal weights (B, H, T, T) of the quadratic form."""
    s = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    t = q.shape[-2]
    weights = (1 + s + s * s / 2) * torch.ones(t, t, dtype=torch.bool, device=q.device).tril()
    return weights / weights.sum(-1, keepdim=True)


def taylor_quadratic(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """The quadratic form: q, k (B, H, T, f), v (B, H, T, Dv) -> o (B, H, T, Dv)."""
    return taylor_weights(q, k) @ v


def taylor_linear(q, k, v, state=None, chunk_size: int = 64):
    """The linear form: (o (B, H, T, Dv), (S (B, H, F, Dv), z (B, H, F))) from running sums over chunks,
    continuing from `state` = (S, z) when given.

    Exercise twin: ex02.taylor_linear_attention (token by token, no chunks).
    """
    b, h, t, f = q.shape
    chunk_size = min(chunk_size, t)  # a decode step is one chunk of one token
    pad = -t % chunk_size
    q, k, v = (torch.nn.functional.pad(x, (0, 0, 0, pad)).unflatten(2, (-1, chunk_size)) for x in (q, k, v))
    phi_q, phi_k = taylor_features(q), taylor_features(k)  # (B, H, c, Q, F); padded keys are zeroed next
    valid = (torch.arange(t + pad, device=q.device) < t).view(-1, chunk_size)[..., None]
    phi_k = phi_k * valid
    s = q @ k.transpose(-1, -2) / math.sqrt(f)
    causal = torch.ones(chunk_size, chunk_size, dtype=torch.bool, device=q.device).tril()
    intra = (1 + s + s * s / 2) * causal * valid.transpose(-1, -2)  # (B, H, c, Q, Q)
    chunk_s = phi_k.transpose(-1, -2) @ v  # (B, H, c, F, Dv): what each chunk adds
    chunk_z = phi_k.sum(-2)  # (B, H, c, F)
    if state is None:
        state = (q.new_zeros(b, h, phi_q.shape[-1], v.shape[-1]), q.new_zeros(b, h, phi_q.shape[-1]))
    s_in = torch.cumsum(torch.cat([state[0][:, :, None], chunk_s], dim=2), dim=2)  # S before each chunk
    z_in = torch.cumsum(torch.cat([state[1][:, :, None], chunk_z], dim=2), dim=2)
    numerator = intra @ v + phi_q @ s_in[:, :, :-1]
    denominator = intra.sum(-1) + (phi_q @ z_in[:, :, :-1, :, None])[..., 0]
    o = (numerator / denominator[..., None]).flatten(2, 3)[:, :, :t]
    return o, (s_in[:, :, -1], z_in[:, :, -1])


@register("T")
class TaylorAttention(nn.Module):
    """Relaxes the mathematical form by approximation: softmax's exp becomes 1 + s + s^2/2 (Based's Taylor
    feature map), computed in the quadratic or the chunked linear form; a fixed-size decode state."""

    def __init__(self, config, layer_idx: int, feature_dim: int = 16, chunk_size: int = 64,
                 quadratic_max_len: int = 512):
        super().__init__()
        check_int("feature_dim", feature_dim)
        check_int("chunk_size", chunk_size)
        check_int("quadratic_max_len", quadratic_max_len, minimum=0)
        self.layer_idx, self.feature_dim, self.chunk_size = layer_idx, feature_dim, chunk_size
        self.quadratic_max_len = quadratic_max_len  # longer sequences (without a cache) use the linear form
        self.n_heads, self.head_dim = config.n_heads, config.head_dim
        self.n_features = 1 + feature_dim + feature_dim ** 2
        d = config.d_model
        self.q_proj = nn.Linear(d, self.n_heads * feature_dim, bias=False)
        self.k_proj = nn.Linear(d, self.n_heads * feature_dim, bias=False)
        self.v_proj = nn.Linear(d, self.n_heads * self.head_dim, bias=False)
        self.o_proj = nn.Linear(self.n_heads * self.head_dim, d, bias=False)

    def _project(self, x: torch.Tensor):
        """x (B, T, d_model) -> q, k (B, H, T, f) and v (B, H, T, Dv)."""
        b, t, _ = x.shape

        def heads(proj, width):
            return proj(x).view(b, t, self.n_heads, width).transpose(1, 2)

        return heads(self.q_proj, self.feature_dim), heads(self.k_proj, self.feature_dim), \
            heads(self.v_proj, self.head_dim)

    def forward(self, x: torch.Tensor, cache: RecurrentState | None = None, start_pos: int = 0):
        """x: (B, T, d_model) for tokens at positions start_pos.. -> (B, T, d_model)."""
        b, t, _ = x.shape
        q, k, v = self._project(x)
        if cache is not None:
            cache.check_next(f"layer {self.layer_idx} (Taylor)", b, start_pos)
            o, (s, z) = taylor_linear(q, k, v, (cache.tensors["S"], cache.tensors["z"]), self.chunk_size)
            cache.tensors["S"].copy_(s)
            cache.tensors["z"].copy_(z)
            cache.length += t
        else:
            o = self._sequence(q, k, v)
        return self.o_proj(o.transpose(1, 2).flatten(2))

    def _sequence(self, q, k, v):
        """o of a whole sequence: the quadratic form up to quadratic_max_len tokens, else the linear one
        (plug_in can swap in ex02.taylor_linear_attention)."""
        if q.shape[2] <= self.quadratic_max_len:
            return taylor_quadratic(q, k, v)
        return taylor_linear(q, k, v, chunk_size=self.chunk_size)[0]

    def mixing_weights(self, x: torch.Tensor, side=None) -> torch.Tensor:
        """(B, H, T, T): the quadratic form's normalised weights."""
        q, k, _ = self._project(x)
        return taylor_weights(q, k)

    def init_cache(self, batch: int, max_len: int, dtype=torch.float32, device=None) -> RecurrentState:
        """S (batch, H, F, Dv) and z (batch, H, F); max_len does not matter."""
        return RecurrentState(
            S=torch.zeros(batch, self.n_heads, self.n_features, self.head_dim, dtype=dtype, device=device),
            z=torch.zeros(batch, self.n_heads, self.n_features, dtype=dtype, device=device))

    def cache_bytes(self, seq_len: int, dtype_bytes: int = 4) -> int:
        """The state's bytes for one sequence: the same at every length."""
        return self.n_heads * self.n_features * (self.head_dim + 1) * dtype_bytes
