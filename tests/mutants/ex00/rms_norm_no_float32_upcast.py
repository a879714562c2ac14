import torch


def rms_norm(x, weight, eps=1e-6):
    """BUG: computes in the input dtype, so x**2 overflows in float16."""
    return x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps) * weight
