import torch


def two_four_mask(scores):
    """BUG: on a tie the later input wins."""
    n, k = scores.shape
    quads = scores.reshape(n, k // 4, 4).flip(-1)
    order = quads.argsort(dim=-1, descending=True, stable=True)[..., :2]
    mask = torch.zeros_like(quads, dtype=torch.bool).scatter_(-1, order, True)
    return mask.flip(-1).reshape(n, k)
