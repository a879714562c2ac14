import torch


def segsum(a):
    """BUG: cumsum[j] - cumsum[i] instead of cumsum[i] - cumsum[j]: the sums come out negated (decay > 1)."""
    q = a.shape[-1]
    cs = a.cumsum(dim=-1)
    out = cs[..., None, :] - cs[..., :, None]
    return out.masked_fill(~torch.ones(q, q, dtype=torch.bool).tril(), float("-inf"))
