import torch


def gptq_block(w, u, scales, mins, bits):
    """BUG: the update reads the column u[l, j] (zero below the diagonal) instead of the row u[j, l]."""
    w = w.float().clone()
    codes = torch.empty(w.shape, dtype=torch.uint8)
    errors = torch.empty_like(w)
    for j in range(w.shape[1]):
        q = torch.round((w[:, j] - mins) / scales).clamp(0, 2**bits - 1)
        codes[:, j] = q.to(torch.uint8)
        errors[:, j] = (w[:, j] - (q * scales + mins)) / u[j, j]
        w[:, j + 1:] -= errors[:, j:j + 1] * u[j + 1:, j]
    return codes, errors
