def wanda_scores(w, x):
    """BUG: the weight's sign is kept, so large negative weights rank lowest."""
    return w.float() * x.float().norm(dim=0)
