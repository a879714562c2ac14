import torch


def rms_norm(x, weight, eps=1e-6):
    """BUG: eps is added after the square root, x / (sqrt(mean(x**2)) + eps)."""
    x32 = x.float()
    rms = torch.sqrt(x32.pow(2).mean(dim=-1, keepdim=True))
    return (x32 / (rms + eps) * weight.float()).to(x.dtype)
