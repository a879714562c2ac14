import torch


def quantize_groups(w, bits, group_size, symmetric):
    """BUG: the asymmetric range is the group's own min..max, not widened to include 0."""
    n, k = w.shape
    groups = w.float().reshape(n, k // group_size, group_size)
    top = 2**bits - 1
    if symmetric:
        scales = 2 * groups.abs().amax(-1) / top
        scales = torch.where(scales > 0, scales, 1.0)
        mins = -(2 ** (bits - 1)) * scales
    else:
        low, high = groups.amin(-1), groups.amax(-1)
        scales = (high - low) / top
        scales = torch.where(scales > 0, scales, 1.0)
        mins = -torch.round(-low / scales) * scales
    codes = torch.round((groups - mins[..., None]) / scales[..., None]).clamp(0, top)
    return codes.reshape(n, k).to(torch.uint8), scales, mins
