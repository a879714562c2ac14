import torch


def rope_cos_sin(positions, head_dim, base=10000.0):
    """BUG: tables in the interleaved (GPT-J) layout, each angle repeated in place, not cat([a, a])."""
    inv_freq = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
    emb = torch.outer(positions.float(), inv_freq).repeat_interleave(2, dim=-1)
    return emb.cos(), emb.sin()
