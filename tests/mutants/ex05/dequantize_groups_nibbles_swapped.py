import torch


def dequantize_groups(packed, scales, mins, bits, group_size):
    """BUG: reads the high nibble as input 2c and the low one as 2c + 1."""
    codes = packed if bits == 8 else torch.stack((packed >> 4, packed & 15), dim=-1).flatten(-2)
    n, k = codes.shape
    groups = codes.float().reshape(n, k // group_size, group_size)
    return (groups * scales[..., None] + mins[..., None]).reshape(n, k)
