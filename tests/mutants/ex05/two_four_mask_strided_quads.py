import torch


def two_four_mask(scores):
    """BUG: a "quad" is inputs j, j + K/4, j + K/2, j + 3K/4 instead of 4 consecutive inputs."""
    n, k = scores.shape
    quads = scores.reshape(n, 4, k // 4).transpose(1, 2)
    order = quads.argsort(dim=-1, descending=True, stable=True)[..., :2]
    mask = torch.zeros_like(quads, dtype=torch.bool).scatter_(-1, order, True)
    return mask.transpose(1, 2).reshape(n, k)
