import torch


def ssm_step(state, x, dt, A, B, C):
    """BUG: y reads the state before the update (state @ C), so the current token never reaches its output."""
    group = x.shape[1] // B.shape[1]
    B, C = B.repeat_interleave(group, dim=1), C.repeat_interleave(group, dim=1)
    new_state = torch.exp(dt * A)[..., None, None] * state + (dt[..., None] * x)[..., None] * B[:, :, None, :]
    return torch.einsum("bhpn,bhn->bhp", state, C), new_state
