def build_configuration(configuration, variant, n_layers, standard="A"):
    """BUG: top and bottom swapped: top keeps attention in the second half, bottom in the first."""
    if isinstance(n_layers, bool) or not isinstance(n_layers, int) or n_layers < 1:
        raise ValueError(f"n_layers must be an int >= 1, got {n_layers!r}")
    n, half = n_layers, n_layers // 2
    if not isinstance(configuration, str):
        keep = sorted(set(configuration))
        if outside := [i for i in keep if not (isinstance(i, int) and 0 <= i < n)]:
            raise ValueError(f"standard-attention blocks {outside} are outside the blocks 0..{n - 1}")
        return "".join(standard if i in keep else variant for i in range(n))
    rules = {
        "uniform": (1, []),
        "standard": (1, range(n)),
        "hybrid": (2, range(1, n, 2)),
        "top": (2, range(half, n)),
        "middle": (2, [*range((half + 1) // 2), *range(n - half // 2, n)]),
        "bottom": (2, range(half)),
        "every 4th": (4, range(3, n, 4)),
        "first": (1, [0]),
        "last": (1, [n - 1]),
        "both ends": (1, [0, n - 1]),
        "skip": (2, range(1, n, 2)),
    }
    if configuration not in rules:
        raise ValueError(f"unknown configuration {configuration!r}; choose one of {', '.join(rules)} "
                         "or a list of block indices")
    multiple, keep = rules[configuration]
    if n < 2 and configuration in ("skip", "both ends"):
        raise ValueError(f"configuration {configuration!r} needs at least 2 blocks, got n_layers={n}")
    if n % multiple:
        raise ValueError(f"configuration {configuration!r} needs n_layers to be a multiple of {multiple}, "
                         f"got {n}")
    if configuration == "skip":
        return standard * len(keep)
    return "".join(standard if i in keep else variant for i in range(n))
