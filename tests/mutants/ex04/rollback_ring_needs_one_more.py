def rollback_ring(key_pos, written, window, pos):
    """BUG: the oldest key needed is pos - window (one too many): a possible rollback at the edge raises."""
    oldest_kept = written - key_pos.shape[0]
    oldest_needed = pos - window
    if 0 < oldest_needed < oldest_kept:
        raise ValueError(f"cannot roll back to {pos}: position {oldest_needed} was overwritten")
    return key_pos.masked_fill(key_pos >= pos, -1)
