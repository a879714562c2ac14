def accept_greedy(drafted, target):
    """BUG: compares drafted[i] with target[i + 1], as if target[0] were the last token's own prediction."""
    agree = drafted == target[1:]
    k = int(agree.long().cumprod(0).sum())
    return k, int(target[k])
