import torch


def visible_windows(q_pos, n_windows, kernel_size, stride):
    """BUG: a window is visible once its FIRST key is, so a query reads a summary of future keys."""
    first_key = torch.arange(n_windows, device=q_pos.device) * stride
    return first_key[None, :] <= q_pos[:, None]
