def rollback_ring(key_pos, written, window, pos):
    """BUG: takes the ring to keep only the last `window` positions (ignores the slack of the capacity)."""
    oldest_kept = written - window
    oldest_needed = pos - window + 1
    if 0 < oldest_needed < oldest_kept:
        raise ValueError(f"cannot roll back to {pos}: position {oldest_needed} was overwritten")
    return key_pos.masked_fill(key_pos >= pos, -1)
