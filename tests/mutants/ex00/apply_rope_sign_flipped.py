import torch


def apply_rope(x, cos, sin):
    """BUG: rotate_half(x) = cat([x2, -x1]), which rotates by minus the angle."""
    x1, x2 = x.chunk(2, dim=-1)
    return x * cos + torch.cat([x2, -x1], dim=-1) * sin
