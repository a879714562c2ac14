"""Graded tests for exercise set 03: InfLLM-V2's compressed keys and their causal visibility, the group-summed
block scores, the top-k selection with forced init and local blocks, and block-sparse attention.

Each test compares your answer with an independent computation (loops over windows, blocks, heads and keys
written out here, sets of tokens for the overlaps, dense causal attention) or with a small case worked out
by hand, on awkward shapes: lengths 1, 31, 33 and 100, GQA groups of 1, 3 and 4, queries that see no
window, fewer blocks than the budget. Run them with

    pytest tests/graded/test_ex03.py          (MINIHYBRID_IMPL=solutions to run the reference answers)
"""

import math

import adapters
import pytest
import torch


def graded(points: int) -> pytest.MarkDecorator:
    return pytest.mark.graded(exercise="ex03", points=points)


@pytest.fixture
def ex03():
    """The ex03 functions under test (yours, or what MINIHYBRID_IMPL selects), through tests/adapters.py."""
    return adapters.load("ex03")


def generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def randn(*shape: int, seed: int = 0, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.randn(*shape, generator=generator(seed), dtype=dtype)


def n_windows(n_keys: int, kernel_size: int, stride: int) -> int:
    """Full windows in n_keys keys, counted one start at a time."""
    return sum(1 for start in range(0, n_keys, stride) if start + kernel_size <= n_keys)


# Compressed keys


COMPRESS_CASES = [(2, 3, 31, 5, 8, 4), (1, 2, 33, 3, 32, 16), (2, 1, 100, 4, 4, 4)]  # B, H, T, D, K, stride


@graded(1)
@pytest.mark.parametrize(
    "B, H, T, D, kernel_size, stride",
    COMPRESS_CASES,
    ids=[f"T{c[2]}-K{c[4]}-s{c[5]}" for c in COMPRESS_CASES],
)
def test_compress_keys_are_the_means_of_full_windows(ex03, B, H, T, D, kernel_size, stride):
    k = randn(B, H, T, D)
    kc = ex03.compress_keys(k, kernel_size, stride)
    windows = n_windows(T, kernel_size, stride)
    assert kc.shape == (B, H, windows, D), f"{T} keys hold {windows} full windows of {kernel_size}"
    for c in range(windows):
        expected = sum(k[:, :, t] for t in range(stride * c, stride * c + kernel_size)) / kernel_size
        torch.testing.assert_close(kc[:, :, c], expected, msg=f"window {c}")


@graded(1)
def test_compress_keys_known_answer_and_short_inputs(ex03):
    """Key t holds the value t: window c's mean is stride c + (kernel_size - 1) / 2."""
    k = torch.arange(40, dtype=torch.float32)[None, None, :, None].expand(2, 1, 40, 3)
    kc = ex03.compress_keys(k, 8, 4)  # windows start at 0, 4, ..., 32: 9 of them
    assert kc.shape == (2, 1, 9, 3) and kc.dtype == torch.float32
    expected = torch.tensor([4 * c + 3.5 for c in range(9)])[None, None, :, None].expand(2, 1, 9, 3)
    torch.testing.assert_close(kc, expected)
    for t in (1, 7):  # fewer keys than one window: no compressed key at all
        short = ex03.compress_keys(randn(2, 3, t, 5), 8, 4)
        assert short.shape == (2, 3, 0, 5) and short.dtype == torch.float64
    exact = ex03.compress_keys(randn(1, 1, 8, 2), 8, 4)
    assert exact.shape == (1, 1, 1, 2), "8 keys hold exactly one window of 8"


# Visible windows


@graded(1)
def test_visible_windows_by_hand(ex03):
    """kernel 8, stride 4: window c ends at key 4c + 7, so position p sees (p - 7) // 4 + 1 windows."""
    q_pos = torch.tensor([0, 6, 7, 10, 11, 15, 30])
    seen = ex03.visible_windows(q_pos, 6, 8, 4)
    counts = [0, 0, 1, 1, 2, 3, 6]
    expected = torch.tensor([[c < n for c in range(6)] for n in counts])
    assert seen.dtype == torch.bool and seen.shape == (7, 6)
    assert torch.equal(seen, expected)


@graded(1)
def test_visible_windows_positions_in_any_order(ex03):
    positions = [100, 3, 47, 48, 0, 31, 63, 64, 33, 2]
    for kernel_size, stride in ((32, 16), (4, 4)):
        seen = ex03.visible_windows(torch.tensor(positions), 7, kernel_size, stride)
        expected = torch.tensor([[stride * c + kernel_size - 1 <= p for c in range(7)] for p in positions])
        assert torch.equal(seen, expected), f"kernel {kernel_size}, stride {stride}"
        assert ex03.visible_windows(torch.tensor(positions), 0, kernel_size, stride).shape == (10, 0)


# Block scores


def scores_by_hand(q, kc, q_pos, kernel_size, stride, block_size, n_blocks):
    """Per kv head and query: each head's softmax over the visible windows, summed over the group, then the
    max over the windows sharing a token with each block (0 for none), all by loops over plain lists."""
    batch, hq, tq, d = q.shape
    hkv, windows = kc.shape[1], kc.shape[2]
    group = hq // hkv
    out = torch.zeros(batch, hkv, tq, n_blocks, dtype=torch.float64)
    for b in range(batch):
        for j in range(hkv):
            for i, p in enumerate(q_pos.tolist()):
                seen = [c for c in range(windows) if stride * c + kernel_size - 1 <= p]
                total = {c: 0.0 for c in range(windows)}
                for h in range(j * group, (j + 1) * group):
                    if seen:
                        logits = torch.stack([q[b, h, i] @ kc[b, j, c] for c in seen]) / math.sqrt(d)
                        for c, prob in zip(seen, torch.softmax(logits, 0).tolist()):
                            total[c] += prob
                for block in range(n_blocks):
                    tokens = set(range(block_size * block, block_size * (block + 1)))
                    overlap = [total[c] for c in range(windows)
                               if tokens & set(range(stride * c, stride * c + kernel_size))]
                    out[b, j, i, block] = max(overlap, default=0.0)
    return out


SIZES = {"K8-s4-B16": (8, 4, 16), "paper": (32, 16, 64), "K4-s4-B8": (4, 4, 8)}
SCORE_CASES = [  # B, Hq, Hkv, Tk, Tq, sizes
    (2, 2, 2, 33, 33, "K8-s4-B16"),  # group of 1; positions 0-6 see no window
    (1, 6, 2, 100, 40, "paper"),  # group of 3, the last 40 of 100 tokens
    (1, 4, 1, 31, 31, "K4-s4-B8"),  # group of 4
]


@graded(1)
@pytest.mark.parametrize(
    "B, Hq, Hkv, Tk, Tq, sizes", SCORE_CASES, ids=[f"G{c[1] // c[2]}-T{c[3]}-{c[5]}" for c in SCORE_CASES]
)
def test_block_scores_by_loop(ex03, B, Hq, Hkv, Tk, Tq, sizes):
    kernel_size, stride, block_size = SIZES[sizes]
    windows, n_blocks = n_windows(Tk, kernel_size, stride), -(-Tk // block_size)
    q, kc = randn(B, Hq, Tq, 8, seed=1), randn(B, Hkv, windows, 8, seed=2)
    q_pos = torch.arange(Tk - Tq, Tk)
    scores = ex03.block_scores(q, kc, q_pos, kernel_size=kernel_size, stride=stride, block_size=block_size,
                               n_blocks=n_blocks)
    assert scores.shape == (B, Hkv, Tq, n_blocks) and scores.dtype == torch.float32
    expected = scores_by_hand(q, kc, q_pos, kernel_size, stride, block_size, n_blocks)
    torch.testing.assert_close(scores, expected.float())


@graded(2)
def test_block_scores_paper_sizes_pool_windows_4k_minus_1_to_4k_plus_3(ex03):
    """kernel 32, stride 16, block 64; D = 1 and q = 1, so window c's logit is kc[c]. Kv head 0 has rising
    logits c / 2: block k's max is its last window, 4k + 3. Kv head 1 has falling logits -c / 2: block k's
    max is its first window, 4k - 1 (window 0 for block 0)."""
    rising = torch.arange(19, dtype=torch.float64) / 2  # 19 windows: 320 keys
    kc = torch.stack([rising, -rising])[None, :, :, None]  # (1, 2, 19, 1)
    q = torch.ones(1, 2, 2, 1, dtype=torch.float64)
    q_pos = torch.tensor([319, 100])  # 319 sees all 19 windows; 100 sees windows 0-4 (window 4 ends at 95)
    scores = ex03.block_scores(q, kc, q_pos, kernel_size=32, stride=16, block_size=64, n_blocks=5)

    def prob(c: int, sign: int, visible: int) -> float:  # softmax of sign * c / 2 over windows 0..visible-1
        return math.exp(sign * c / 2) / sum(math.exp(sign * x / 2) for x in range(visible))

    expected = [
        [[prob(c, 1, 19) for c in (3, 7, 11, 15, 18)], [prob(3, 1, 5), prob(4, 1, 5), 0.0, 0.0, 0.0]],
        [[prob(c, -1, 19) for c in (0, 3, 7, 11, 15)], [prob(0, -1, 5), prob(3, -1, 5), 0.0, 0.0, 0.0]],
    ]
    torch.testing.assert_close(scores, torch.tensor([expected], dtype=torch.float32))


@graded(1)
def test_block_scores_sum_the_probabilities_of_each_group(ex03):
    """Hq = 6, Hkv = 2 (G = 3); D = 1; kernel = stride = 4, block 8: windows 0 (keys 0-3) and 1 (keys 4-7)
    both lie in block 0, and block 1 has none. Kv head 0 (kc = 0, 1) serves query heads 0-2 with q = 1, -1,
    0: at position 7 their probabilities add up to 1.5 on each window. Kv head 1 (kc = 0, 3) serves query
    heads 3-5, all with q = 1. Position 6 sees window 0 only (3 heads x probability 1), position 2 none."""
    kc = torch.tensor([[0.0, 1.0], [0.0, 3.0]], dtype=torch.float64)[None, :, :, None]  # (1, 2, 2, 1)
    per_head = torch.tensor([1.0, -1.0, 0.0, 1.0, 1.0, 1.0], dtype=torch.float64)
    q = per_head.reshape(1, 6, 1, 1).expand(1, 6, 3, 1)  # the same q at the 3 positions
    scores = ex03.block_scores(q, kc, torch.tensor([7, 6, 2]), kernel_size=4, stride=4, block_size=8,
                               n_blocks=2)
    e3 = math.exp(3.0)
    expected = [[[1.5, 0.0], [3.0, 0.0], [0.0, 0.0]], [[3 * e3 / (1 + e3), 0.0], [3.0, 0.0], [0.0, 0.0]]]
    torch.testing.assert_close(scores, torch.tensor([expected], dtype=torch.float32))


@graded(1)
def test_block_scores_no_visible_window_scores_zero(ex03):
    q, kc = randn(2, 4, 7, 8), randn(2, 2, 4, 8, seed=1)  # 4 windows of kernel 8, stride 4: 20 keys
    early = ex03.block_scores(q, kc, torch.arange(7), kernel_size=8, stride=4, block_size=16, n_blocks=2)
    assert early.shape == (2, 2, 7, 2) and early.dtype == torch.float32
    assert torch.equal(early, torch.zeros_like(early)), "positions 0-6 see no full window of 8: all 0"
    none = ex03.block_scores(q, kc[:, :, :0], torch.arange(7), kernel_size=8, stride=4, block_size=16,
                             n_blocks=1)
    assert none.shape == (2, 2, 7, 1) and torch.equal(none, torch.zeros_like(none)), "no windows at all"


@graded(1)
def test_block_scores_ignore_windows_not_yet_visible(ex03):
    """Changing the windows a position cannot see yet changes nothing of its scores."""
    q, kc = randn(1, 3, 40, 4), randn(1, 1, 9, 4, seed=1)  # kernel 8, stride 4: 40 keys, 9 windows
    sizes = {"kernel_size": 8, "stride": 4, "block_size": 8, "n_blocks": 5}
    scores = ex03.block_scores(q, kc, torch.arange(40), **sizes)
    for p in (7, 12, 22, 30):
        kc2 = kc.clone()
        first_unseen = (p - 7) // 4 + 1
        kc2[:, :, first_unseen:] = 5 * randn(1, 1, 9 - first_unseen, 4, seed=p)
        changed = ex03.block_scores(q[:, :, p : p + 1], kc2, torch.tensor([p]), **sizes)
        torch.testing.assert_close(changed, scores[:, :, p : p + 1], msg=f"position {p} read a future window")


# Selecting the blocks


def select_by_hand(scores, q_pos, block_size, init_blocks, window, topk):
    """Per row: the forced blocks, then the topk best others, none in the future; sorted, -1 padded."""
    n_blocks = scores.shape[-1]
    width = min(n_blocks, init_blocks + window // block_size + 1 + topk)
    out = torch.full((*scores.shape[:-1], width), -1, dtype=torch.int32)
    for b in range(scores.shape[0]):
        for h in range(scores.shape[1]):
            for i, p in enumerate(q_pos.tolist()):
                own = p // block_size
                past = range(min(own + 1, n_blocks))
                chosen = [j for j in past if j < init_blocks or j >= own - window // block_size]
                others = [j for j in past if j not in chosen]
                others.sort(key=lambda j: scores[b, h, i, j].item(), reverse=True)
                listed = sorted(chosen + others[:topk])
                out[b, h, i, : len(listed)] = torch.tensor(listed, dtype=torch.int32)
    return out


def distinct_scores(*shape: int, seed: int = 0) -> torch.Tensor:
    """Scores in [0, 1) with no ties within a row (the order of tied blocks is up to topk)."""
    rows = [torch.randperm(shape[-1], generator=generator(seed + r)) for r in range(math.prod(shape[:-1]))]
    return (torch.stack(rows).float() / shape[-1]).reshape(shape)


SELECT_CASES = {  # B, Hkv, NB, q_pos, block_size, init_blocks, window, topk
    "every-position": (1, 2, 10, list(range(40)), 4, 1, 8, 2),
    "unsorted-positions": (2, 1, 13, [51, 3, 49, 20, 48, 0, 33, 12], 4, 2, 4, 3),
    "no-init-no-topk": (1, 1, 5, [79, 15, 16, 47, 66], 16, 0, 32, 0),
    "fewer-blocks-than-the-budget": (1, 2, 3, [0, 5, 9, 11], 4, 1, 8, 4),
}


@graded(1)
@pytest.mark.parametrize("case", SELECT_CASES)
def test_select_blocks_by_loop(ex03, case):
    B, Hkv, n_blocks, positions, block_size, init_blocks, window, topk = SELECT_CASES[case]
    scores, q_pos = distinct_scores(B, Hkv, len(positions), n_blocks), torch.tensor(positions)
    sizes = {"block_size": block_size, "init_blocks": init_blocks, "window": window, "topk": topk}
    blocks = ex03.select_blocks(scores, q_pos, **sizes)
    assert blocks.dtype == torch.int32
    assert torch.equal(blocks, select_by_hand(scores, q_pos, **sizes))


@graded(2)
def test_select_blocks_by_hand(ex03):
    """Blocks of 4 tokens, init 1, window 8 (2 blocks before the own one), top-2: 6 slots in all."""
    scores = torch.tensor([0.0, 0.9, 0.2, 0.7, 0.1, 0.8, 0.3, 0.05, 0.6, 5.0]).expand(1, 1, 6, 10)
    q_pos = torch.tensor([37, 13, 22, 27, 0, 4])
    blocks = ex03.select_blocks(scores, q_pos, block_size=4, init_blocks=1, window=8, topk=2)
    assert blocks.dtype == torch.int32
    assert blocks[0, 0].tolist() == [
        [0, 1, 5, 7, 8, 9],  # own block 9: forced 0, 7, 8, 9; the best others are 1 (0.9) and 5 (0.8)
        [0, 1, 2, 3, -1, -1],  # own block 3: all forced; 5 and 9 score high but lie in the future
        [0, 1, 2, 3, 4, 5],  # own block 5: forced 0, 3, 4, 5; 1 and 2 are the only others
        [0, 1, 3, 4, 5, 6],  # own block 6: forced 0, 4, 5, 6; the best others are 1 and 3 (0.7)
        [0, -1, -1, -1, -1, -1],  # own block 0: nothing else exists yet
        [0, 1, -1, -1, -1, -1],  # own block 1
    ]
    # three init blocks, but the query sits in block 0: blocks 1 and 2 are in the future, forced or not
    early = ex03.select_blocks(scores[:, :, :1, :3], torch.tensor([1]), block_size=4, init_blocks=3, window=4,
                               topk=1)
    assert early.tolist() == [[[[0, -1, -1]]]]


@graded(1)
def test_select_blocks_ties_go_to_the_earlier_block(ex03):
    """Blocks 1-4 tie at 0.5 (as neighbours sharing their best window do); top-2 takes blocks 1 and 2."""
    scores = torch.tensor([0.1, 0.5, 0.5, 0.5, 0.5, 0.2, 0.0, 0.0]).expand(2, 1, 1, 8)
    blocks = ex03.select_blocks(scores, torch.tensor([31]), block_size=4, init_blocks=1, window=4, topk=2)
    assert blocks.tolist() == [[[[0, 1, 2, 6, 7]]]] * 2


@graded(1)
def test_select_blocks_rows_are_causal_ascending_and_full(ex03):
    """With the best scores in the future: every row lists min(own + 1, budget) distinct earlier blocks,
    ascending, with -1 only after them."""
    q_pos = torch.arange(0, 200, 3)
    scores = distinct_scores(2, 2, len(q_pos), 13, seed=7) + torch.arange(13) * 10.0  # later is better
    blocks = ex03.select_blocks(scores, q_pos, block_size=16, init_blocks=1, window=16, topk=2)
    assert blocks.shape == (2, 2, len(q_pos), 5)  # 1 init + 1 before + own + top-2
    own = (q_pos // 16)[:, None]
    valid = blocks >= 0
    assert (blocks <= own).all(), "a future block was listed"
    assert torch.equal(valid.sum(-1), (own + 1).clamp(max=5).squeeze(-1).expand(2, 2, -1))
    ranked = torch.where(valid, blocks, 10**6 + torch.arange(5))  # -1 slots: rising, after every block
    assert (ranked.diff(dim=-1) > 0).all(), "rows must be ascending, distinct, with -1 at the end"


# Block-sparse attention


def attention_by_hand(q, k, v, blocks, block_size):
    """Row by row: the keys of the listed blocks up to the query's position, one softmax over them."""
    batch, hq, tq, d = q.shape
    hkv, tk = k.shape[1], k.shape[2]
    group = hq // hkv
    out = torch.zeros(batch, hq, tq, d, dtype=torch.float64)
    for b in range(batch):
        for h in range(hq):
            for i in range(tq):
                p, listed = tk - tq + i, set(blocks[b, h // group, i].tolist()) - {-1}
                keys = [j for j in range(tk) if j // block_size in listed and j <= p]
                if keys:
                    logits = torch.stack([q[b, h, i] @ k[b, h // group, j] for j in keys]) / math.sqrt(d)
                    weights = torch.softmax(logits, 0)
                    out[b, h, i] = sum(w * v[b, h // group, j] for w, j in zip(weights, keys))
    return out


def random_blocks(B, Hkv, Tq, Tk, block_size, width, seed=0):
    """The query's own block in column 0 (so its causal cut matters), random blocks or -1 after it."""
    n_blocks = -(-Tk // block_size)
    blocks = torch.randint(-1, n_blocks, (B, Hkv, Tq, width), generator=generator(seed))
    blocks[..., 0] = torch.arange(Tk - Tq, Tk) // block_size
    return blocks


ATTENTION_CASES = [  # B, Hq, Hkv, Tq, Tk, D, block_size, listed blocks per row
    (1, 2, 2, 1, 1, 4, 4, 2),  # one key
    (2, 6, 2, 31, 31, 8, 4, 3),  # group of 3
    (1, 4, 1, 5, 100, 16, 16, 3),  # group of 4, the last 5 of 100 tokens
    (1, 3, 3, 33, 33, 5, 8, 4),  # group of 1
]


@graded(1)
@pytest.mark.parametrize(
    "B, Hq, Hkv, Tq, Tk, D, block_size, S",
    ATTENTION_CASES,
    ids=[f"G{c[1] // c[2]}-Tq{c[3]}-Tk{c[4]}-bs{c[6]}" for c in ATTENTION_CASES],
)
def test_block_sparse_attention_by_loop(ex03, B, Hq, Hkv, Tq, Tk, D, block_size, S):
    q, k, v = randn(B, Hq, Tq, D), randn(B, Hkv, Tk, D, seed=1), randn(B, Hkv, Tk, D, seed=2)
    blocks = random_blocks(B, Hkv, Tq, Tk, block_size, S, seed=3)
    out = ex03.block_sparse_attention(q, k, v, blocks, block_size=block_size)
    assert out.shape == (B, Hq, Tq, D) and out.dtype == torch.float64
    torch.testing.assert_close(out, attention_by_hand(q, k, v, blocks, block_size))


def causal_attention(q, k, v):
    """Dense causal attention, queries aligned to the end of the keys, kv head h // G for query head h."""
    group, tq, tk = q.shape[1] // k.shape[1], q.shape[2], k.shape[2]
    k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
    future = torch.arange(tk)[None, :] > torch.arange(tk - tq, tk)[:, None]
    scores = (q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])).masked_fill(future, -math.inf)
    return torch.softmax(scores, dim=-1) @ v


@graded(1)
def test_block_sparse_attention_with_every_block_listed_is_causal_attention(ex03):
    q, k, v = randn(2, 4, 20, 8), randn(2, 2, 33, 8, seed=1), randn(2, 2, 33, 8, seed=2)
    every = torch.arange(5).expand(2, 2, 20, 5)  # blocks of 8: 33 keys in 5 blocks
    out = ex03.block_sparse_attention(q, k, v, every, block_size=8)
    torch.testing.assert_close(out, causal_attention(q, k, v))


@graded(1)
def test_block_sparse_attention_rows_without_keys_are_zero(ex03):
    """Queries at positions 4..11 (12 keys in blocks of 4): row 0 lists nothing, row 1 only block 2, keys
    8-11, all after its position 5."""
    q, k, v = randn(1, 2, 8, 4), randn(1, 1, 12, 4, seed=1), randn(1, 1, 12, 4, seed=2)
    rows = [[-1, -1], [2, -1], [0, 1], [1, -1], [2, 0], [1, 2], [-1, 2], [0, 0]]
    blocks = torch.tensor(rows)[None, None]  # (1, 1, 8, 2)
    out = ex03.block_sparse_attention(q, k, v, blocks, block_size=4)
    assert torch.isfinite(out).all(), "a row that sees no key must output zeros, not NaN"
    assert torch.equal(out[:, :, :2], torch.zeros(1, 2, 2, 4, dtype=torch.float64))
    torch.testing.assert_close(out[:, :, 2:], attention_by_hand(q, k, v, blocks, 4)[:, :, 2:])


@graded(1)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["float32", "bfloat16"])
def test_block_sparse_attention_keeps_the_dtype(ex03, dtype):
    q, k, v = (randn(1, 4, 9, 16, seed=s).to(dtype) for s in (0, 1, 2))
    k, v = k[:, :2], v[:, :2]
    blocks = random_blocks(1, 2, 9, 9, 4, 2, seed=4)
    out = ex03.block_sparse_attention(q, k, v, blocks, block_size=4)
    assert out.dtype == dtype
    expected = attention_by_hand(q.double(), k.double(), v.double(), blocks, 4).to(dtype)
    tolerance = {"atol": 1e-5, "rtol": 1e-5} if dtype == torch.float32 else {"atol": 2e-2, "rtol": 2e-2}
    torch.testing.assert_close(out, expected, **tolerance)


# All of it


@graded(1)
def test_selection_with_a_budget_beyond_the_blocks_is_dense_causal_attention(ex03):
    """With topk as large as the number of blocks every earlier block is selected, so the pipeline, from
    compressed keys to the attention, must give plain causal attention."""
    q, k, v = randn(1, 6, 100, 8), randn(1, 2, 100, 8, seed=1), randn(1, 2, 100, 8, seed=2)
    q_pos = torch.arange(100)
    kc = ex03.compress_keys(k, 8, 4)
    scores = ex03.block_scores(q, kc, q_pos, kernel_size=8, stride=4, block_size=16, n_blocks=7)
    blocks = ex03.select_blocks(scores, q_pos, block_size=16, init_blocks=1, window=16, topk=7)
    assert blocks.shape == (1, 2, 100, 7)
    out = ex03.block_sparse_attention(q, k, v, blocks, block_size=16)
    torch.testing.assert_close(out, causal_attention(q, k, v))
