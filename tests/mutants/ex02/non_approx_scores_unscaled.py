def non_approx_scores(q, k):
    """BUG: forgets the 1 / sqrt(D) scale: s_j = q_j . k_j."""
    return (q * k).sum(dim=-1)
