def accept_sampled(drafted, q, p, u):
    """BUG: when all n are accepted returns p[n - 1], the last drafted token's row, not the bonus p[n]."""
    for i, token in enumerate(drafted.tolist()):
        if u[i] < p[i, token] / q[i, token]:
            continue
        residual = (p[i] - q[i]).clamp(min=0)
        total = residual.sum()
        return i, residual / total if total > 0 else p[i]
    return drafted.shape[0], p[max(drafted.shape[0] - 1, 0)]
