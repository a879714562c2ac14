import torch


def non_approx_attention(s, v):
    """BUG: the softmax runs over all T tokens, so every token gets the same average, future included."""
    weights = torch.softmax(s, dim=-1)  # (B, H, T)
    o = (weights[..., None] * v).sum(dim=-2, keepdim=True)  # (B, H, 1, Dv)
    return o.expand_as(v)
