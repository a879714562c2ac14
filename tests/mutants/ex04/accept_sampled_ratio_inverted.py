def accept_sampled(drafted, q, p, u):
    """BUG: accepts with probability q / p instead of p / q."""
    for i, token in enumerate(drafted.tolist()):
        if u[i] < q[i, token] / p[i, token]:
            continue
        residual = (p[i] - q[i]).clamp(min=0)
        total = residual.sum()
        return i, residual / total if total > 0 else p[i]
    return drafted.shape[0], p[drafted.shape[0]]
