import math

import torch


def taylor_features(x):
    """BUG: leaves out the constant feature 1, so phi(q) . phi(k) = s + s^2/2 (and f + f^2 features)."""
    f = x.shape[-1]
    outer = (x[..., :, None] * x[..., None, :]).flatten(-2)
    return torch.cat([x / f**0.25, outer / math.sqrt(2 * f)], dim=-1)
