import torch


def ssm_step(state, x, dt, A, B, C):
    """BUG: head h reads B/C group h % G instead of h // (H // G)."""
    group = x.shape[1] // B.shape[1]
    B, C = B.repeat(1, group, 1), C.repeat(1, group, 1)
    new_state = torch.exp(dt * A)[..., None, None] * state + (dt[..., None] * x)[..., None] * B[:, :, None, :]
    return torch.einsum("bhpn,bhn->bhp", new_state, C), new_state
