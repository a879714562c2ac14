def accept_sampled(drafted, q, p, u):
    """BUG: normalises p - q without clamping the negative entries to 0."""
    for i, token in enumerate(drafted.tolist()):
        if u[i] < p[i, token] / q[i, token]:
            continue
        residual = p[i] - q[i]
        total = residual.sum()
        return i, residual / total if total > 0 else p[i]
    return drafted.shape[0], p[drafted.shape[0]]
