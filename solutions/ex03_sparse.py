"""Exercise set 03: InfLLM-V2's block-sparse attention, from choosing the blocks to attending to them.

InfLLM-V2 (arXiv 2509.24663) makes attention over a long context sparse without adding a single parameter.
The keys are cut into blocks of ``block_size`` tokens, and each query reads only a handful of them: a few
it always keeps, plus the blocks a cheap, coarse look at the whole context ranks highest. The coarse look
uses the same query and key projections as the attention itself, so one set of weights runs dense on short
inputs and sparse on long ones. This set builds the selection step by step, then the attention that reads
only the chosen blocks. Test your answers with

    pytest tests/graded/test_ex03.py        (or: python -m minihybrid grade --exercise ex03)

Each function's docstring ends with its "Library twin": the library code that does the same job in the real
model (tests/test_exercise_twins.py checks that the two agree).

How a query at absolute position p picks its blocks (the keys sit at positions 0..Tk-1):

1. Compress the keys (``compress_keys``). Window c is the plain mean of the ``kernel_size`` keys at
   positions [stride c, stride c + kernel_size): a summary of that stretch of context. Only full windows
   exist, C = (Tk - kernel_size) // stride + 1 of them (none while Tk < kernel_size); with stride <
   kernel_size neighbouring windows overlap (the paper: kernel 32, stride 16).
2. Score the windows (``visible_windows``, ``block_scores``). Window c is visible to p once its last key
   is, stride c + kernel_size - 1 <= p: a query never looks at a summary that contains a future key. Each
   query head takes a softmax of q . kc_c / sqrt(D) over the windows it sees (a query that sees none
   scores 0 everywhere), and the G query heads that share a kv head add up their probabilities: the group
   chooses one set of blocks together, so the sparse kernel loads each block once for all G heads.
3. Pool onto blocks (in ``block_scores``). Block k, tokens [block_size k, block_size (k + 1)), scores the
   max over the windows that overlap it (with the paper's sizes, block 64, windows 4k-1 .. 4k+3); a block
   that no visible window overlaps scores 0.
4. Select (``select_blocks``). Always the first ``init_blocks`` blocks (the start of the text, where
   attention sinks sit) and the local blocks: p's own block p // block_size and the window // block_size
   blocks before it. Never a future block (after p's own): they are ruled out before ranking, so none
   takes a slot. Then the ``topk`` best of the other earlier blocks. In all at most S = init_blocks +
   window // block_size + 1 + topk blocks, and fewer when the context holds fewer.
5. Attend (``block_sparse_attention``). One softmax over the keys of the selected blocks, causal at the
   token level (only the query's own block holds keys after p).

The paper's kernel normalises step 2's softmax with a second, coarser set of compressed keys to save a pass
over the keys; here (and in the library) the softmax is exact.

Glossary of tensor dimensions:
    B    batch size
    Hq   query heads; Hkv key/value heads; G = Hq // Hkv: query head h reads kv head h // G
    Tq   query tokens, at absolute positions q_pos (Tq,); when the keys are given, the queries are the
         last Tq tokens: query i sits at position Tk - Tq + i
    Tk   key/value tokens, at positions 0..Tk-1
    D    head dimension
    C    compressed keys (windows of kernel_size keys, every stride tokens)
    NB   key blocks, ceil(Tk / block_size); block j holds the keys [block_size j, block_size (j + 1))
    S    blocks listed per query (entries -1 mean "no block")
"""

import torch


def compress_keys(k: torch.Tensor, kernel_size: int, stride: int) -> torch.Tensor:
    """The compressed keys: the mean of each full window of ``kernel_size`` keys, one every ``stride`` keys.

    k: (B, Hkv, Tk, D). Returns kc (B, Hkv, C, D), k's dtype, with C = (Tk - kernel_size) // stride + 1
    full windows (C = 0, an empty (B, Hkv, 0, D) tensor, when Tk < kernel_size):

        kc[b, h, c] = mean of k[b, h, t] over t = stride c, ..., stride c + kernel_size - 1

    A partial window at the end (fewer than kernel_size keys left) is not a window: it is dropped.
    Hint: ``k.unfold(2, kernel_size, stride)`` is (B, Hkv, C, D, kernel_size), every full window at once
    (it refuses a size larger than Tk, so treat that case first).

    Library twin: minihybrid.kernels.block_sparse.select.compress_keys
    """
    # BEGIN SOLUTION
    b, h, t, d = k.shape
    if t < kernel_size:
        return k.new_zeros(b, h, 0, d)
    return k.unfold(2, kernel_size, stride).mean(-1)
    # END SOLUTION


def visible_windows(q_pos: torch.Tensor, n_windows: int, kernel_size: int, stride: int) -> torch.Tensor:
    """Which compressed keys each query may look at: those whose every key is at or before the query.

    q_pos: (Tq,) integer absolute positions, in any order. Returns (Tq, C) bool with C = n_windows:

        visible[i, c] = stride c + kernel_size - 1 <= q_pos[i]      (window c's last key is not in the future)

    E.g. kernel_size 8, stride 4: window 0 (keys 0-7) from position 7 on, window 1 (keys 4-11) from 11 on.

    Library twin: minihybrid.kernels.block_sparse.select.visible_windows
    """
    # BEGIN SOLUTION
    last_key = torch.arange(n_windows, device=q_pos.device) * stride + kernel_size - 1  # (C,)
    return last_key[None, :] <= q_pos[:, None]
    # END SOLUTION


def block_scores(
    q: torch.Tensor,
    kc: torch.Tensor,
    q_pos: torch.Tensor,
    *,
    kernel_size: int,
    stride: int,
    block_size: int,
    n_blocks: int,
) -> torch.Tensor:
    """How much each query group wants each key block: window probabilities, summed over the group, then
    max-pooled onto the blocks.

    q: (B, Hq, Tq, D) queries at positions q_pos (Tq,); kc: (B, Hkv, C, D) from ``compress_keys``;
    kernel_size and block_size are multiples of stride. Returns (B, Hkv, Tq, NB) float32, NB = n_blocks:

        1. logits[b, h, i, c] = q[b, h, i] . kc[b, h // G, c] / sqrt(D)              (B, Hq, Tq, C)
        2. probs = softmax over the windows c that are visible to q_pos[i] (``visible_windows``), 0 for
           the others; a row that sees no window at all is 0 everywhere (not NaN)
        3. group[b, j, i, c] = sum of probs[b, h, i, c] over the G query heads h of kv head j,
           h = j G .. j G + G - 1                                                     (B, Hkv, Tq, C)
        4. scores[b, j, i, k] = max of group[b, j, i, c] over the windows c that overlap block k, i.e.
           share a token with [block_size k, block_size (k + 1)): stride c < block_size (k + 1) and
           stride c + kernel_size > block_size k; 0 when no window does (windows past C do not exist)

    With the paper's sizes (kernel 32, stride 16, block 64), block k pools the windows 4k-1 .. 4k+3.
    Hint: compute in float32; ``masked_fill(..., -inf)`` then ``softmax`` then ``nan_to_num(0.0)`` handles
    the rows that see nothing; a (C, NB) bool "window c overlaps block k" matrix does step 4 (every score is
    >= 0, so multiplying by it and taking ``amax`` over the windows leaves 0 where none overlaps).

    Library twin: minihybrid.kernels.block_sparse.select.block_scores
    """
    # BEGIN SOLUTION
    b, hq, tq, d = q.shape
    hkv, n_windows = kc.shape[1], kc.shape[2]
    if n_windows == 0:
        return torch.zeros(b, hkv, tq, n_blocks, dtype=torch.float32, device=q.device)
    group = hq // hkv
    kc_per_head = kc.float().repeat_interleave(group, dim=1)  # (B, Hq, C, D): query head h gets kv h // G
    logits = q.float() @ kc_per_head.transpose(-1, -2) / d**0.5  # (B, Hq, Tq, C)
    seen = visible_windows(q_pos, n_windows, kernel_size, stride)  # (Tq, C)
    probs = logits.masked_fill(~seen, float("-inf")).softmax(-1).nan_to_num(0.0)
    summed = probs.reshape(b, hkv, group, tq, n_windows).sum(2)  # (B, Hkv, Tq, C)
    start = torch.arange(n_windows, device=q.device) * stride  # first key of each window
    first = torch.arange(n_blocks, device=q.device) * block_size  # first key of each block
    overlap = (start[:, None] < first[None, :] + block_size) & (start[:, None] + kernel_size > first[None, :])
    return (summed[..., :, None] * overlap).amax(-2)  # (B, Hkv, Tq, NB)
    # END SOLUTION


def select_blocks(
    scores: torch.Tensor,
    q_pos: torch.Tensor,
    *,
    block_size: int,
    init_blocks: int,
    window: int,
    topk: int,
) -> torch.Tensor:
    """The blocks each query group attends to: the forced ones, then the ``topk`` best of the rest.

    scores: (B, Hkv, Tq, NB) from ``block_scores`` (finite; larger is better); q_pos: (Tq,)
    positions; ``window`` is a whole number (>= 1) of blocks. For the query at p = q_pos[i], with its own
    block own = p // block_size:

        forced      blocks 0 .. init_blocks - 1, and the local blocks own - window // block_size .. own
        future      blocks after own: never listed, even forced or with the best score
        extra       the ``topk`` highest-scoring blocks among the others (neither forced nor future)

    Returns (B, Hkv, Tq, S) int32 with S = min(NB, init_blocks + window // block_size + 1 + topk): each row
    lists its forced and extra blocks (each once, none in the future) in ascending order, then -1 in the
    slots left over. ``topk`` counts the extra blocks only: the forced ones come on top. Equal scores are
    common (neighbouring blocks share the window that overlaps both): the earlier block wins the tie.
    Hint: give the forced blocks the score +inf and the future ones -inf (in that order: a forced block in
    the future stays out); ``sort(dim=-1, descending=True, stable=True)`` keeps the earlier block first among
    equal scores: take the first S. Indices whose value is -inf are slots left over: send them to the end
    (e.g. replace them by NB before sorting the indices, by -1 after).

    Library twin: minihybrid.kernels.block_sparse.select.select_blocks
    """
    # BEGIN SOLUTION
    n_blocks = scores.shape[-1]
    block = torch.arange(n_blocks, device=scores.device)[None, :]  # (1, NB)
    own = torch.div(q_pos, block_size, rounding_mode="floor")[:, None]  # (Tq, 1)
    forced = (block < init_blocks) | ((block >= own - window // block_size) & (block <= own))  # (Tq, NB)
    ranked = scores.float().masked_fill(forced, float("inf")).masked_fill(block > own, float("-inf"))
    width = min(n_blocks, init_blocks + window // block_size + 1 + topk)
    values, index = (t[..., :width] for t in ranked.sort(dim=-1, descending=True, stable=True))
    index = index.masked_fill(values == float("-inf"), n_blocks).sort(-1).values  # left-over slots last
    return index.masked_fill(index == n_blocks, -1).to(torch.int32)
    # END SOLUTION


def block_sparse_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, blocks: torch.Tensor, block_size: int
) -> torch.Tensor:
    """Causal attention that reads only the listed key blocks, in plain PyTorch (dense scores, then a mask).

    q: (B, Hq, Tq, D); k, v: (B, Hkv, Tk, D), Tq <= Tk; blocks: (B, Hkv, Tq, S) int, entries in -1..NB-1
    (-1 = no block; a block may be listed twice). The queries are the last Tq tokens: query i sits at
    p = Tk - Tq + i. Query head h uses kv head h // G and that kv head's block list. Key j is allowed for
    query i when

        j // block_size is listed in blocks[b, h // G, i]    and    j <= p      (causal inside its own block)

    and out[b, h, i] = softmax over the allowed keys j of q[b, h, i] . k[b, h // G, j] / sqrt(D), weighting
    v[b, h // G, j]. A row with no allowed key (nothing listed, or only future keys) outputs zeros, not
    NaN. Returns (B, Hq, Tq, D) in q's dtype, computed in float32 (float64 for float64 inputs).
    Hint: ``blocks[..., None] == key_block`` with key_block = arange(Tk) // block_size is (B, Hkv, Tq, S, Tk),
    and ``.any(-2)`` gives the listed keys (a -1 matches no key); ``repeat_interleave(G, dim=1)`` spreads
    the kv heads and the mask over the query heads.

    Library twin: minihybrid.kernels.block_sparse.reference.block_sparse_reference
    """
    # BEGIN SOLUTION
    hq, hkv, tq, tk = q.shape[1], k.shape[1], q.shape[2], k.shape[2]
    group = hq // hkv
    acc = torch.float64 if q.dtype == torch.float64 else torch.float32
    key_pos = torch.arange(tk, device=q.device)
    listed = (blocks[..., None] == (key_pos // block_size)).any(-2)  # (B, Hkv, Tq, Tk)
    causal = key_pos[None, :] <= torch.arange(tk - tq, tk, device=q.device)[:, None]  # (Tq, Tk)
    allowed = (listed & causal).repeat_interleave(group, dim=1)  # (B, Hq, Tq, Tk)
    k, v = (t.to(acc).repeat_interleave(group, dim=1) for t in (k, v))
    scores = q.to(acc) @ k.transpose(-1, -2) / q.shape[-1] ** 0.5
    probs = scores.masked_fill(~allowed, float("-inf")).softmax(-1).nan_to_num(0.0)  # no key: zeros
    return (probs @ v).to(q.dtype)
    # END SOLUTION
