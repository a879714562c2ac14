import torch


def quantize_groups(w, bits, group_size, symmetric):
    """BUG: an all-zero group keeps the scale 0 (codes become NaN -> garbage)."""
    n, k = w.shape
    groups = w.float().reshape(n, k // group_size, group_size)
    top = 2**bits - 1
    if symmetric:
        scales = 2 * groups.abs().amax(-1) / top
        mins = -(2 ** (bits - 1)) * scales
    else:
        low, high = groups.amin(-1).clamp(max=0), groups.amax(-1).clamp(min=0)
        scales = (high - low) / top
        mins = -torch.round(-low / scales) * scales
    codes = torch.round((groups - mins[..., None]) / scales[..., None]).clamp(0, top)
    return codes.reshape(n, k).to(torch.uint8), scales, mins
