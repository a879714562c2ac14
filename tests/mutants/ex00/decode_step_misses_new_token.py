import torch


def decode_step(q_new, k_new, v_new, k_cache, v_cache, pos):
    """BUG: attends over cache[:, :, :pos], leaving out the token just written at pos."""
    k_cache[:, :, pos : pos + 1], v_cache[:, :, pos : pos + 1] = k_new, v_new
    group = q_new.shape[1] // k_cache.shape[1]
    k = k_cache[:, :, :pos].repeat_interleave(group, dim=1)
    v = v_cache[:, :, :pos].repeat_interleave(group, dim=1)
    return torch.softmax(q_new @ k.transpose(-2, -1) * q_new.shape[-1] ** -0.5, dim=-1) @ v
