import torch


def clasp_skip_set(full_states, run_layer, n_skip):
    """BUG: scores the candidates against full_states[i - 1], the state before layer i - 1."""
    if full_states.dim() != 2:
        raise ValueError(f"full_states must be (L + 1, d), got shape {tuple(full_states.shape)}")
    n_layers = full_states.shape[0] - 1
    if not 0 <= n_skip <= n_layers:
        raise ValueError(f"n_skip must be in 0..{n_layers}, got {n_skip}")
    cos = torch.nn.functional.cosine_similarity
    states = full_states[:1]  # g[i-1][j] in row j
    skipped = []  # skipped[i - 1][j]: whether g[i][j] came from skipping layer i - 1
    for i in range(1, n_layers + 1):
        ran, target = run_layer(i - 1, states), full_states[i - 1]
        rows, skips = [], []
        for j in range(min(i, n_skip) + 1):
            can_run, can_skip = j < states.shape[0], j >= 1
            take_skip = not can_run or (
                can_skip and bool(cos(states[j - 1], target, dim=-1) > cos(ran[j], target, dim=-1))
            )
            rows.append(states[j - 1] if take_skip else ran[j])
            skips.append(take_skip)
        states = torch.stack(rows)
        skipped.append(skips)
    skip_set, j = [], n_skip
    for i in range(n_layers, 0, -1):
        if skipped[i - 1][j]:
            skip_set.append(i - 1)
            j -= 1
    return sorted(skip_set)
