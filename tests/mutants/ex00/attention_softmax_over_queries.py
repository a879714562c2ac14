import torch


def causal_gqa_attention(q, k, v):
    """BUG: softmax normalises over the query axis (dim=-2) instead of the key axis."""
    group = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
    scores = q @ k.transpose(-2, -1) * q.shape[-1] ** -0.5
    seq_len = q.shape[2]
    visible = torch.ones(seq_len, seq_len, dtype=torch.bool).tril()
    return torch.softmax(scores.masked_fill(~visible, float("-inf")), dim=-2) @ v
