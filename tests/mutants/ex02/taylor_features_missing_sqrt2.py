import math

import torch


def taylor_features(x):
    """BUG: the second-order features are divided by sqrt(f), not sqrt(2) sqrt(f): phi . phi = 1 + s + s^2."""
    f = x.shape[-1]
    outer = (x[..., :, None] * x[..., None, :]).flatten(-2)
    return torch.cat([torch.ones_like(x[..., :1]), x / f**0.25, outer / math.sqrt(f)], dim=-1)
