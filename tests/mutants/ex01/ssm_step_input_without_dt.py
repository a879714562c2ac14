import torch


def ssm_step(state, x, dt, A, B, C):
    """BUG: writes outer(x, B) into the state, forgetting the dt on the input."""
    group = x.shape[1] // B.shape[1]
    B, C = B.repeat_interleave(group, dim=1), C.repeat_interleave(group, dim=1)
    new_state = torch.exp(dt * A)[..., None, None] * state + x[..., None] * B[:, :, None, :]
    return torch.einsum("bhpn,bhn->bhp", new_state, C), new_state
