import torch

from solutions.ex03_sparse import visible_windows


def block_scores(q, kc, q_pos, *, kernel_size, stride, block_size, n_blocks):
    """BUG: query head h reads kv head h % Hkv instead of h // G."""
    b, hq, tq, d = q.shape
    hkv, n_windows = kc.shape[1], kc.shape[2]
    if n_windows == 0:
        return torch.zeros(b, hkv, tq, n_blocks, dtype=torch.float32, device=q.device)
    group = hq // hkv
    kc_per_head = kc.float().repeat(1, group, 1, 1)
    logits = q.float() @ kc_per_head.transpose(-1, -2) / d**0.5
    seen = visible_windows(q_pos, n_windows, kernel_size, stride)
    probs = logits.masked_fill(~seen, float("-inf")).softmax(-1).nan_to_num(0.0)
    summed = probs.reshape(b, hkv, group, tq, n_windows).sum(2)
    start = torch.arange(n_windows, device=q.device) * stride
    first = torch.arange(n_blocks, device=q.device) * block_size
    overlap = (start[:, None] < first[None, :] + block_size) & (start[:, None] + kernel_size > first[None, :])
    return (summed[..., :, None] * overlap).amax(-2)
