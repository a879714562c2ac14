import torch


def gptq_block(w, u, scales, mins, bits):
    """BUG: the error is not divided by u[j, j]."""
    w = w.float().clone()
    codes = torch.empty(w.shape, dtype=torch.uint8)
    errors = torch.empty_like(w)
    for j in range(w.shape[1]):
        q = torch.round((w[:, j] - mins) / scales).clamp(0, 2**bits - 1)
        codes[:, j] = q.to(torch.uint8)
        errors[:, j] = w[:, j] - (q * scales + mins)
        w[:, j + 1:] -= errors[:, j:j + 1] * u[j, j + 1:]
    return codes, errors
