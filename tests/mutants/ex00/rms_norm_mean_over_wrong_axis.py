import torch


def rms_norm(x, weight, eps=1e-6):
    """BUG: the mean of x**2 is taken over the second-to-last dimension instead of the last."""
    x32 = x.float()
    inv_rms = torch.rsqrt(x32.pow(2).mean(dim=-2, keepdim=True) + eps)
    return (x32 * inv_rms * weight.float()).to(x.dtype)
