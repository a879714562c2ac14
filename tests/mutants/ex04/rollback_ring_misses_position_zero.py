def rollback_ring(key_pos, written, window, pos):
    """BUG: never raises when the token at pos needs position 0 (pos < window) of a ring that overwrote it."""
    oldest_kept = written - key_pos.shape[0]
    oldest_needed = pos - window + 1
    if 0 < oldest_needed < oldest_kept:
        raise ValueError(f"cannot roll back to {pos}: position {oldest_needed} was overwritten")
    return key_pos.masked_fill(key_pos >= pos, -1)
