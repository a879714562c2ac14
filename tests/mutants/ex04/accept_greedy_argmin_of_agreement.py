def accept_greedy(drafted, target):
    """BUG: k is the first disagreement found with argmin, which is 0 when every drafted token agrees."""
    agree = drafted == target[: drafted.shape[0]]
    k = int(agree.long().argmin()) if drafted.shape[0] else 0
    return k, int(target[k])
