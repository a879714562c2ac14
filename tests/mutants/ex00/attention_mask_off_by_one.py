import torch


def causal_gqa_attention(q, k, v):
    """BUG: the causal mask is off by one, so query i also sees key i + 1."""
    group = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
    scores = q @ k.transpose(-2, -1) * q.shape[-1] ** -0.5
    seq_len = q.shape[2]
    visible = torch.ones(seq_len, seq_len, dtype=torch.bool).tril(diagonal=1)
    return torch.softmax(scores.masked_fill(~visible, float("-inf")), dim=-1) @ v
