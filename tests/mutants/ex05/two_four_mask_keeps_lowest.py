import torch


def two_four_mask(scores):
    """BUG: keeps the 2 LOWEST scores of every 4."""
    n, k = scores.shape
    quads = scores.reshape(n, k // 4, 4)
    order = quads.argsort(dim=-1, stable=True)[..., :2]
    return torch.zeros_like(quads, dtype=torch.bool).scatter_(-1, order, True).reshape(n, k)
