import torch


def dequantize_groups(packed, scales, mins, bits, group_size):
    """BUG: input k takes group k % G instead of k // group_size (groups interleaved, not consecutive)."""
    codes = packed if bits == 8 else torch.stack((packed & 15, packed >> 4), dim=-1).flatten(-2)
    repeats = codes.shape[1] // scales.shape[1]
    return codes.float() * scales.repeat(1, repeats) + mins.repeat(1, repeats)
