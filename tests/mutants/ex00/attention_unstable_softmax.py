import torch


def causal_gqa_attention(q, k, v):
    """BUG: softmax as exp(s) / sum(exp(s)) without subtracting the row maximum, which overflows."""
    group = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
    scores = q @ k.transpose(-2, -1) * q.shape[-1] ** -0.5
    seq_len = q.shape[2]
    visible = torch.ones(seq_len, seq_len, dtype=torch.bool).tril()
    weights = scores.exp().masked_fill(~visible, 0.0)
    return weights / weights.sum(dim=-1, keepdim=True) @ v
