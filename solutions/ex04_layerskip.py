"""Exercise set 04: self-speculative decoding, from accepting drafted tokens to CLaSp's choice of layers.

A decoding step of a small model on a CPU costs about the same for one token as for a few: it is the reading
of the weights that takes the time. Speculative decoding spends that spare capacity. A cheap draft proposes
n tokens one at a time; the full model then checks all of them in ONE forward pass over [last token,
d_1..d_n] and keeps the longest prefix it agrees with, plus one token of its own. In self-speculative
decoding (CLaSp, arXiv 2505.24196) the draft is the same model with a set of layers skipped, so it needs no
extra weights and writes into the same caches. This set builds the pieces: the greedy acceptance rule, the
rollback of a sliding-window KV cache to the accepted length, CLaSp's dynamic program that picks which
layers to skip, and the sampling acceptance rule that keeps the output distribution exactly the full
model's. Test your answers with

    pytest tests/graded/test_ex04.py        (or: python -m minihybrid grade --exercise ex04)

Each function's docstring ends with its "Library twin": the library code that does the same job in the real
model (tests/test_exercise_twins.py checks that the two agree).

One round of decoding, greedy:

1. Draft: run the model with the skip set S left out, n times, one token each: d_1..d_n.
2. Verify: run the full model once over [last token, d_1..d_n]; its argmax after each prefix is
   target (n + 1,). ``accept_greedy`` keeps d_1..d_k and adds target[k]: the output is exactly what plain
   greedy decoding of the full model would have written, and each round writes at least one token.
3. Cut every cache back to the new length (``rollback_ring`` for a sliding-window one).
4. Every few rounds, re-choose S from the full model's hidden states of the last token (``clasp_skip_set``).

Glossary of tensor dimensions:
    n    drafted tokens in one round (may be 0)
    V    vocabulary size
    L    layers of the model; full_states has L + 1 rows (row 0 the embedding)
    d    width of a hidden state (d_model)
    J    hidden states that go through one layer in one batched call (one per number of layers skipped)
"""

from collections.abc import Callable

import torch


def accept_greedy(drafted: torch.Tensor, target: torch.Tensor) -> tuple[int, int]:
    """Greedy verification: (k, next token) from the drafted tokens (n,) long and the full model's argmax
    target (n + 1,) long, target[i] its choice after the prefix [last token, d_1..d_i].

    k is the length of the longest prefix of drafted that agrees with target (drafted[i] == target[i] for
    every i < k); the next token is target[k]: the full model's correction of the first disagreement, or,
    when all n were accepted, the bonus token it chose after d_n. E.g. drafted [5, 7, 2], target
    [5, 7, 9, 4] -> (2, 9); drafted [5], target [5, 3] -> (1, 3); drafted [] (n = 0), target [8] -> (0, 8).
    Both are Python ints.

    Library twin: minihybrid.speculative.accept_greedy
    """
    # BEGIN SOLUTION
    agree = drafted == target[: drafted.shape[0]]
    k = int(agree.long().cumprod(0).sum())
    return k, int(target[k])
    # END SOLUTION


def rollback_ring(key_pos: torch.Tensor, written: int, window: int, pos: int) -> torch.Tensor:
    """Roll a sliding-window KV ring buffer back to ``pos``: the new key_pos, with every slot that holds a
    position >= pos emptied (-1). The input key_pos is not modified.

    The ring (minihybrid/layers/cache.py: KVCache with a window) has capacity = key_pos.shape[0] slots;
    token p was written to slot p % capacity, and key_pos[s] is the absolute position slot s holds (-1:
    empty). ``written`` is one past the highest position ever written, so the ring has overwritten every
    position below oldest_kept = written - capacity. After the rollback the next token sits at ``pos`` and
    attends to the keys oldest_needed = max(pos - window + 1, 0) .. pos - 1. Raise ValueError when one of
    them is gone: when oldest_needed < pos (it needs a key at all) and oldest_needed < oldest_kept (a
    capacity of window + slack tokens lets a speculative decoder roll back up to slack tokens).

    E.g. capacity 4, window 3, positions 0..5 written: key_pos [4, 5, 2, 3], written 6, oldest_kept 2.
    Rolling back to 4 gives [-1, -1, 2, 3] (the next token, at 4, needs 2 and 3: both kept); rolling back
    to 3 needs position 1, which position 5 overwrote: ValueError.

    Library twin: minihybrid.layers.cache.KVCache.rollback
    """
    # BEGIN SOLUTION
    oldest_kept = written - key_pos.shape[0]
    oldest_needed = max(pos - window + 1, 0)
    if oldest_needed < min(pos, oldest_kept):
        raise ValueError(f"cannot roll back to {pos}: position {oldest_needed} was overwritten")
    return key_pos.masked_fill(key_pos >= pos, -1)
    # END SOLUTION


def clasp_skip_set(full_states: torch.Tensor, run_layer: Callable[[int, torch.Tensor], torch.Tensor],
                   n_skip: int) -> list[int]:
    """CLaSp's dynamic program: which n_skip of the L layers to skip so that the draft's hidden state stays
    closest to the full model's, layer after layer.

    full_states (L + 1, d): row i is the full model's hidden state after i layers (row 0 the embedding), for
    the last verified token. run_layer(l, x) runs layer l on J states x (J, d) at once and returns (J, d).
    g[i][j] is the best state after i layers with j of them skipped, g[0][0] = full_states[0]; for i = 1..L
    and j = 0..min(i, n_skip) it is the better of two candidates:

        run    run_layer(i - 1, g[i-1][j])     only when j <= i - 1 (layer i - 1 runs)
        skip   g[i-1][j-1]                      only when j >= 1     (layer i - 1 is skipped)

    "Better" is the higher cosine similarity (torch.nn.functional.cosine_similarity over the last dim) with
    full_states[i]; skip wins only when strictly higher (ties: run). Every state g[i-1][j] of one step goes
    through layer i - 1 in ONE batched call, run_layer(i - 1, states stacked (J, d)): L calls in all.
    Then backtrack from g[L][n_skip] to g[0][0], remembering at each step whether the winner skipped: a skip
    at step i puts layer i - 1 in the set. Returns the skip set as a sorted list of n_skip ints.
    ValueError when full_states is not 2-D or n_skip is outside 0..L.

    The program is greedy per cell, not exhaustive: it usually finds one of the best subsets, not always
    the best.

    Library twin: minihybrid.layer_select.dp_skip_set
    """
    # BEGIN SOLUTION
    if full_states.dim() != 2:
        raise ValueError(f"full_states must be (L + 1, d), got shape {tuple(full_states.shape)}")
    n_layers = full_states.shape[0] - 1
    if not 0 <= n_skip <= n_layers:
        raise ValueError(f"n_skip must be in 0..{n_layers}, got {n_skip}")
    cos = torch.nn.functional.cosine_similarity
    states = full_states[:1]  # g[i-1][j] in row j
    skipped = []  # skipped[i - 1][j]: whether g[i][j] came from skipping layer i - 1
    for i in range(1, n_layers + 1):
        ran, target = run_layer(i - 1, states), full_states[i]
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
    # END SOLUTION


def accept_sampled(drafted: torch.Tensor, q: torch.Tensor, p: torch.Tensor,
                   u: torch.Tensor) -> tuple[int, torch.Tensor]:
    """Speculative sampling: (k accepted, the distribution (V,) to sample the next token from).

    drafted (n,) long; q (n, V): q[i] is the draft's distribution that drafted[i] was sampled from; p (n + 1,
    V): p[i] the full model's at the same position (p[n] after the last drafted token); u (n,) uniforms in
    [0, 1). In order i = 0, 1, ..., accept drafted[i] iff

        u[i] < p[i, drafted[i]] / q[i, drafted[i]]           (always when the full model likes it more)

    At the first rejection i return (i, residual), residual = clamp(p[i] - q[i], min=0) normalised to sum
    1 (if it sums to 0, return p[i]). When all n are accepted return (n, p[n]): the bonus token's
    distribution. The caller samples the next token from the returned distribution; the tokens written
    are then distributed exactly as if the full model had sampled them itself.

    Library twin: minihybrid.speculative.accept_sampled
    """
    # BEGIN SOLUTION
    for i, token in enumerate(drafted.tolist()):
        if u[i] < p[i, token] / q[i, token]:
            continue
        residual = (p[i] - q[i]).clamp(min=0)
        total = residual.sum()
        return i, residual / total if total > 0 else p[i]
    return drafted.shape[0], p[drafted.shape[0]]
    # END SOLUTION
