def rollback_ring(key_pos, written, window, pos):
    """BUG: takes the oldest key needed to be at least position 1, so a lost position 0 goes unnoticed."""
    oldest_kept = written - key_pos.shape[0]
    oldest_needed = max(pos - window + 1, 1)
    if oldest_needed < min(pos, oldest_kept):
        raise ValueError(f"cannot roll back to {pos}: position {oldest_needed} was overwritten")
    return key_pos.masked_fill(key_pos >= pos, -1)
