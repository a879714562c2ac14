import torch

from solutions.ex02_deconstruct import taylor_features


def taylor_linear_attention(q, k, v):
    """BUG: returns phi(q_i) @ S_i without dividing by phi(q_i) . z_i (unnormalised linear attention)."""
    phi_q, phi_k = taylor_features(q), taylor_features(k)
    S = q.new_zeros(*phi_k.shape[:2], phi_k.shape[-1], v.shape[-1])
    out = []
    for i in range(q.shape[2]):
        S = S + phi_k[:, :, i, :, None] * v[:, :, i, None, :]
        out.append((phi_q[:, :, i, :, None] * S).sum(-2))
    return torch.stack(out, dim=2)
