import torch


def apply_rope(x, cos, sin):
    """BUG: rotates interleaved pairs (x[2i], x[2i+1]) instead of the halves (x[i], x[i + D/2])."""
    even, odd = x[..., 0::2], x[..., 1::2]
    rotated = torch.stack([-odd, even], dim=-1).flatten(-2)
    return x * cos + rotated * sin
