def non_approx_scores(q, k):
    """BUG: divides by D instead of sqrt(D)."""
    return (q * k).sum(dim=-1) / q.shape[-1]
