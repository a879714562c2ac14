import torch


def fuse_branches(attn_out, ssm_out, attn_weight, ssm_weight, fusion="concat", eps=1e-5):
    """BUG: eps is added after the square root, t / (sqrt(mean(t**2)) + eps)."""
    if fusion not in ("concat", "diff"):
        raise ValueError(f"unknown fusion {fusion!r}")

    def rms_norm(t, weight):
        return t / (torch.sqrt(t.pow(2).mean(dim=-1, keepdim=True)) + eps) * weight

    a, s = rms_norm(attn_out, attn_weight), rms_norm(ssm_out, ssm_weight)
    return torch.cat([a, s], dim=-1) if fusion == "concat" else a - s
