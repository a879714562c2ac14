import math


def non_approx_scores(q, k):
    """BUG: divides by sqrt(T), the number of tokens (q.shape[-2]), instead of sqrt(D), the head dim."""
    return (q * k).sum(dim=-1) / math.sqrt(q.shape[-2])
