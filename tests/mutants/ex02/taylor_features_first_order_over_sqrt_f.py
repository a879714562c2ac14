import math

import torch


def taylor_features(x):
    """BUG: the first-order features are x / sqrt(f), not x / f^(1/4), so that term is s / sqrt(f), not s."""
    f = x.shape[-1]
    outer = (x[..., :, None] * x[..., None, :]).flatten(-2)
    return torch.cat([torch.ones_like(x[..., :1]), x / math.sqrt(f), outer / math.sqrt(2 * f)], dim=-1)
