def accept_greedy(drafted, target):
    """BUG: counts every agreeing position, not the agreeing prefix."""
    k = int((drafted == target[: drafted.shape[0]]).sum())
    return k, int(target[k])
