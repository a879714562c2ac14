def accept_sampled(drafted, q, p, u):
    """BUG: after a rejection samples from the full model's p[i] instead of the residual max(p - q, 0)."""
    for i, token in enumerate(drafted.tolist()):
        if u[i] < p[i, token] / q[i, token]:
            continue
        return i, p[i]
    return drafted.shape[0], p[drafted.shape[0]]
