"""InfLLM-V2's block selection (kernels/block_sparse/select.py) against a per-query loop written from the
paper's kernels' rules, plus each step alone: compressed keys, the windows each block pools, the forced
blocks, causality, chunking, decoding from cached compressed keys, and the size checks."""

import pytest
import torch
from kernels.helpers import randn

from minihybrid.kernels.block_sparse.select import (
    block_scores,
    check_sizes,
    compress_keys,
    n_compressed,
    pool_onto_blocks,
    select_blocks,
    sparse_blocks,
)

SMALL = {"kernel_size": 8, "stride": 4, "block_size": 16, "init_blocks": 1, "window": 16, "topk": 2}
PAPER_SHAPED = {"kernel_size": 32, "stride": 16, "block_size": 64, "init_blocks": 2, "window": 64, "topk": 3}
SIZES = [SMALL, PAPER_SHAPED, {"kernel_size": 4, "stride": 4, "block_size": 8, "init_blocks": 0, "window": 8,
                               "topk": 1}]


def naive_rules(q, k, kernel_size, stride, block_size, init_blocks, window, topk):
    """{(b, h, i): (forced blocks, {other earlier block: score})} by loops over every query: the selection
    rules spelled out one by one."""
    b_, hq, tq, d = q.shape
    hkv, tk = k.shape[1], k.shape[2]
    g = hq // hkv
    out = {}
    for b in range(b_):
        for h in range(hkv):
            windows = [k[b, h, stride * c: stride * c + kernel_size].mean(0)
                       for c in range((tk - kernel_size) // stride + 1)] if tk >= kernel_size else []
            for i in range(tq):
                p = tk - tq + i
                seen = [c for c in range(len(windows)) if stride * c + kernel_size - 1 <= p]
                score = {c: 0.0 for c in seen}
                for head in range(h * g, h * g + g):
                    if seen:
                        logits = torch.stack([q[b, head, i] @ windows[c] for c in seen]) / d**0.5
                        for c, prob in zip(seen, logits.softmax(0)):
                            score[c] += prob.item()
                own = p // block_size
                chosen = {j for j in range(own + 1) if j < init_blocks or j >= own - window // block_size}
                candidates = {}
                for j in set(range(own + 1)) - chosen:
                    first, stop = block_size * j, block_size * (j + 1)  # the block's tokens
                    overlap = [score[c] for c in seen
                               if stride * c < stop and stride * c + kernel_size > first]
                    candidates[j] = max(overlap, default=0.0)
                out[b, h, i] = chosen, candidates
    return out


def assert_follows_the_rules(blocks, rules, topk):
    """Each row holds its forced blocks and the `topk` best-scoring others (ties may go either way)."""
    chosen = as_sets(blocks)
    assert chosen.keys() == rules.keys()
    for row, (forced, candidates) in rules.items():
        extra = chosen[row] - forced
        assert forced <= chosen[row] and extra <= candidates.keys(), row
        assert len(extra) == min(topk, len(candidates)), row
        left_out = candidates.keys() - extra
        if extra and left_out:
            assert min(candidates[j] for j in extra) >= max(candidates[j] for j in left_out) - 1e-12, row


def as_sets(blocks):
    return {(b, h, i): {j for j in row.tolist() if j >= 0}
            for (b, h, i), row in zip(torch.cartesian_prod(*map(torch.arange, blocks.shape[:3])).tolist(),
                                      blocks.reshape(-1, blocks.shape[-1]))}


def qk(b, hq, hkv, tq, tk, d=8, seed=0):
    return randn((b, hq, tq, d), (b, hkv, tk, d), dtype=torch.float64, seed=seed)


@pytest.mark.parametrize("backend", ["torch", "numba"])
@pytest.mark.parametrize("sizes", SIZES, ids=["small", "paper-shaped", "kernel=stride"])
@pytest.mark.parametrize("hq,hkv", [(2, 2), (6, 2), (4, 1)], ids=["G1", "G3", "G4"])
@pytest.mark.parametrize("tq,tk", [(1, 1), (31, 31), (100, 100), (1, 257), (9, 140)])
def test_selection_matches_the_rules_query_by_query(tq, tk, hq, hkv, sizes, backend):
    q, k = qk(2, hq, hkv, tq, tk)
    blocks = sparse_blocks(q, k, **sizes, backend=backend)
    assert_follows_the_rules(blocks, naive_rules(q, k, **sizes), sizes["topk"])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("tq,tk", [(1, 1), (1, 300), (77, 300), (300, 300)])
def test_the_numba_kernel_chooses_what_the_torch_steps_do(tq, tk, dtype):
    # the same blocks, ties included (both rank equal scores earlier block first)
    q, k = (t.to(dtype) for t in qk(2, 6, 2, tq, tk, d=16, seed=4))
    for sizes in SIZES:
        torch.testing.assert_close(sparse_blocks(q, k, **sizes, backend="numba"),
                                   sparse_blocks(q, k, **sizes, backend="torch"), atol=0, rtol=0)


def test_the_numba_kernel_is_refused_where_it_cannot_run():
    q, k = qk(1, 2, 1, 8, 40)
    with pytest.raises(ValueError, match="backend 'numba' needs"):
        sparse_blocks(q.half(), k.half(), **SMALL, backend="numba")
    with pytest.raises(ValueError, match="backend must be 'auto', 'torch' or 'numba'"):
        sparse_blocks(q, k, **SMALL, backend="cuda")


def test_blocks_are_ascending_causal_and_padded_at_the_end():
    q, k = qk(1, 4, 2, 200, 200)
    blocks = sparse_blocks(q, k, **SMALL)
    assert blocks.dtype == torch.int32 and blocks.shape[-1] == 1 + 1 + 1 + 2  # init, own + 1 before, top-2
    own = torch.arange(200) // 16
    valid = blocks >= 0
    assert (blocks <= own[:, None]).all()
    assert (valid[..., :-1] >= valid[..., 1:]).all()  # -1 only after the valid ones
    assert (blocks.diff(dim=-1)[valid[..., 1:]] > 0).all()  # ascending and distinct
    assert (valid.sum(-1) == torch.clamp(own + 1, max=5)).all()  # every earlier block up to the budget


def test_a_chunked_prefill_selects_what_one_pass_does():
    q, k = qk(1, 6, 2, 150, 150)
    assert torch.equal(sparse_blocks(q, k, **SMALL, chunk=7), sparse_blocks(q, k, **SMALL))


def test_decoding_with_cached_compressed_keys_selects_what_prefill_did():
    q, k = qk(1, 6, 2, 120, 120)
    prefill = sparse_blocks(q, k, **SMALL)
    for t in (30, 77, 120):
        kc = compress_keys(k[:, :, :t], SMALL["kernel_size"], SMALL["stride"])
        step = sparse_blocks(q[:, :, t - 1:t], k[:, :, :t], kc=kc, **SMALL)
        assert as_sets(step)[0, 1, 0] == as_sets(prefill[:, :, t - 1:t])[0, 1, 0]


@pytest.mark.parametrize("t", [1, 31, 32, 33, 47, 48, 100])
def test_compressed_keys_are_the_means_of_full_windows(t):
    k = randn((1, 2, t, 4), dtype=torch.float64)[0]
    kc = compress_keys(k, 32, 16)
    assert kc.shape[2] == n_compressed(t, 32, 16) == (0 if t < 32 else (t - 32) // 16 + 1)
    for c in range(kc.shape[2]):
        torch.testing.assert_close(kc[:, :, c], k[:, :, 16 * c:16 * c + 32].mean(2))


def test_paper_blocks_pool_windows_4k_minus_1_to_4k_plus_3():
    # window c scores c: block k's max is its last overlapping window, 4k + 3 (or the last one there is)
    scores = torch.arange(10, dtype=torch.float32)[None]
    pooled = pool_onto_blocks(scores, kernel_size=32, stride=16, block_size=64, n_blocks=4)
    assert pooled.tolist() == [[3.0, 7.0, 9.0, 0.0]]
    # window 4k - 1 counts for block k: only window 3 is large
    spike = torch.zeros(10).index_fill(0, torch.tensor([3]), 1.0)[None]
    pooled = pool_onto_blocks(spike, kernel_size=32, stride=16, block_size=64, n_blocks=3)
    assert pooled.tolist() == [[1.0, 1.0, 0.0]]


def test_forced_blocks_win_and_future_blocks_never_count():
    # a query at position 100 (block 6 of 16): init block 0, local blocks 5-6; the best earlier block is 3
    scores = torch.zeros(1, 1, 1, 10)
    scores[..., 3], scores[..., 9], scores[..., 2] = 0.5, 9.0, 0.1  # block 9 is in the future
    blocks = select_blocks(scores, torch.tensor([100]), block_size=16, init_blocks=1, window=16, topk=1)
    assert blocks.tolist() == [[[[0, 3, 5, 6]]]]


def test_queries_that_see_no_window_score_zero():
    q, k = qk(1, 2, 1, 5, 20)
    scores = block_scores(q, compress_keys(k, 8, 4), torch.arange(15, 20), kernel_size=8, stride=4,
                          block_size=16, n_blocks=2)
    assert torch.isfinite(scores).all()
    q_early = block_scores(q, compress_keys(k, 8, 4), torch.arange(0, 5), kernel_size=8, stride=4,
                           block_size=16, n_blocks=2)
    assert torch.equal(q_early, torch.zeros_like(q_early))  # positions 0-4 see no full window of 8


@pytest.mark.parametrize("sizes,match", [
    ({"kernel_size": 30}, "kernel_size=30 must be a multiple of stride=16"),
    ({"block_size": 72}, "block_size=72 must be a multiple of stride=16"),
    ({"window": 32}, "window=32 must be a whole number"),
    ({"window": 100}, "window=100 must be a whole number"),
    ({"topk": -1}, "topk must be an int >= 0"),
    ({"stride": 0}, "stride must be an int >= 1"),
])
def test_sizes_that_do_not_fit_are_refused(sizes, match):
    args = PAPER_SHAPED | {"window": 128} | sizes
    with pytest.raises(ValueError, match=match):
        check_sizes(**args)
