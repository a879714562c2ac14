import torch


def rope_cos_sin(positions, head_dim, base=10000.0):
    """BUG: inv_freq[i] = base ** (-i / D) instead of base ** (-2i / D)."""
    inv_freq = base ** (-torch.arange(head_dim // 2, dtype=torch.float32) / head_dim)
    angles = torch.outer(positions.float(), inv_freq)
    emb = torch.cat([angles, angles], dim=-1)
    return emb.cos(), emb.sin()
