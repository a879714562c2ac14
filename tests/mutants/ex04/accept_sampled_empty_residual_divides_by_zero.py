def accept_sampled(drafted, q, p, u):
    """BUG: a residual that sums to 0 is divided by 0 (NaN) instead of falling back to p[i]."""
    for i, token in enumerate(drafted.tolist()):
        if u[i] < p[i, token] / q[i, token]:
            continue
        residual = (p[i] - q[i]).clamp(min=0)
        return i, residual / residual.sum()
    return drafted.shape[0], p[drafted.shape[0]]
