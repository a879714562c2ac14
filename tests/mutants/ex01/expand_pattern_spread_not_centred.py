def expand_pattern(pattern, n_layers=None, other="S", attention="A"):
    """BUG: spread puts each block at the start of its share, i * n / count, not at its centre."""
    ratio, _, placement = pattern.partition("@")
    try:
        a, b = (int(part) for part in ratio.split(":"))
    except ValueError:
        raise ValueError(f"bad ratio pattern {pattern!r}") from None
    if a < 0 or b < 0 or a + b == 0:
        raise ValueError(f"bad ratio pattern {pattern!r}")
    n = a + b if n_layers is None else n_layers
    if n < 1 or n % (a + b):
        raise ValueError(f"n_layers={n} must be a positive multiple of {a + b}")
    count = n * a // (a + b)
    placements = {
        "spread": lambda: [i * n // count for i in range(count)],
        "every": lambda: [i * n // count for i in range(count)],
        "front": lambda: list(range(count)),
        "back": lambda: list(range(n - count, n)),
        "sandwich": lambda: [*range((count + 1) // 2), *range(n - count // 2, n)],
        "center": lambda: list(range((n - count) // 2, (n - count) // 2 + count)),
    }
    placement = placement or "spread"
    if placement not in placements:
        raise ValueError(f"unknown placement {placement!r}")
    letters = [other] * n
    for i in placements[placement]() if count else []:
        letters[i] = attention
    return "".join(letters)
