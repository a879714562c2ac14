import torch


def quantize_groups(w, bits, group_size, symmetric):
    """BUG: the symmetric scale spans max|v| instead of 2 max|v|, so the extremes are clipped."""
    n, k = w.shape
    groups = w.float().reshape(n, k // group_size, group_size)
    top = 2**bits - 1
    if symmetric:
        scales = groups.abs().amax(-1) / top
        scales = torch.where(scales > 0, scales, 1.0)
        mins = -(2 ** (bits - 1)) * scales
    else:
        low, high = groups.amin(-1).clamp(max=0), groups.amax(-1).clamp(min=0)
        scales = (high - low) / top
        scales = torch.where(scales > 0, scales, 1.0)
        mins = -torch.round(-low / scales) * scales
    codes = torch.round((groups - mins[..., None]) / scales[..., None]).clamp(0, top)
    return codes.reshape(n, k).to(torch.uint8), scales, mins
