import torch


def segsum(a):
    """BUG: out[i, j] = a[j] + ... + a[i] (cumsum[i] - cumsum[j - 1]), one term too many; diagonal a[i]."""
    q = a.shape[-1]
    lower = torch.ones(q, q, dtype=torch.bool).tril()
    out = a[..., :, None].expand(*a.shape, q).masked_fill(~lower, 0).cumsum(dim=-2)
    return out.masked_fill(~lower, float("-inf"))
