import torch


def non_approx_attention(s, v):
    """BUG: exp(s) with no maximum subtracted: overflows to inf / inf = NaN once scores pass ~89 or ~710."""
    weights = torch.exp(s)
    return (weights[..., None] * v).cumsum(dim=-2) / weights.cumsum(dim=-1)[..., None]
