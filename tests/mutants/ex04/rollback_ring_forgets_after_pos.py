def rollback_ring(key_pos, written, window, pos):
    """BUG: forgets positions > pos, keeping the position pos itself."""
    oldest_kept = written - key_pos.shape[0]
    oldest_needed = pos - window + 1
    if 0 < oldest_needed < oldest_kept:
        raise ValueError(f"cannot roll back to {pos}: position {oldest_needed} was overwritten")
    return key_pos.masked_fill(key_pos > pos, -1)
