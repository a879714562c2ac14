def rollback_ring(key_pos, written, window, pos):
    """BUG: empties the slots of the caller's key_pos in place."""
    oldest_kept = written - key_pos.shape[0]
    oldest_needed = pos - window + 1
    if 0 < oldest_needed < oldest_kept:
        raise ValueError(f"cannot roll back to {pos}: position {oldest_needed} was overwritten")
    key_pos[key_pos >= pos] = -1
    return key_pos
