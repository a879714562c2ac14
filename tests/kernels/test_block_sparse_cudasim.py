"""numba.cuda block-sparse attention vs the reference, under the simulator (NUMBA_ENABLE_CUDASIM=1) or on a
real GPU.

Run in its own process:  NUMBA_ENABLE_CUDASIM=1 python -m pytest -m cudasim tests/kernels
(the variable must be set before numba is imported). Shapes stay <= 32 because the simulator is slow.
"""

import pytest
import torch
from kernels import helpers
from kernels.helpers import assert_close, check_backend, nan_like

from minihybrid.kernels import numba_cuda

if not numba_cuda.available():
    pytest.skip("needs NUMBA_ENABLE_CUDASIM=1 (set before numba is imported) or numba.cuda with a GPU",
                allow_module_level=True)

from minihybrid.kernels.attention import attention_reference
from minihybrid.kernels.block_sparse import block_sparse_attention, block_sparse_reference
from minihybrid.kernels.block_sparse.cuda import block_sparse_cuda
from minihybrid.kernels.block_sparse.select import sparse_blocks

pytestmark = pytest.mark.cudasim
DEVICE = numba_cuda.tensor_device()


def qkv(b, hq, hkv, tq, tk, d, seed=0):
    return helpers.qkv(b, hq, hkv, tq, tk, d, seed=seed, device=DEVICE)


def n_blocks(tk, block_size):
    return -(-tk // block_size)


def all_blocks(b, hkv, tq, tk, block_size):
    """Every block listed for every row: plain causal attention."""
    listed = torch.arange(n_blocks(tk, block_size), dtype=torch.int32)
    return listed.expand(b, hkv, tq, -1).contiguous().to(DEVICE)


def random_blocks(b, hkv, tq, tk, block_size, s, drop=0.3, seed=0):
    """S distinct blocks per row in random order (not sorted), each replaced by -1 with probability `drop`,
    so -1 lands anywhere in a row."""
    g = torch.Generator().manual_seed(seed)
    order = torch.rand(b, hkv, tq, n_blocks(tk, block_size), generator=g).argsort(-1)[..., :s]
    dropped = torch.rand(order.shape, generator=g) < drop
    return order.masked_fill(dropped, -1).to(torch.int32).to(DEVICE)


def check(q, k, v, blocks, block_size, **kw):
    """The "cuda" backend fills a NaN-prefilled out that matches the reference; returns it."""
    return check_backend(block_sparse_attention, block_sparse_reference, (q, k, v, blocks), "cuda",
                         block_size=block_size, **kw)


@pytest.mark.parametrize("tk,block_size", [(29, 8), (33, 8), (29, 16), (33, 16)])
def test_cuda_all_blocks_is_causal_attention_on_odd_lengths(tk, block_size):
    # Tk not a multiple of the block size: the last block is partial
    q, k, v = qkv(1, 2, 2, tk, tk, 8)
    out = check(q, k, v, all_blocks(1, 2, tk, tk, block_size), block_size)
    assert_close(out, attention_reference(q, k, v, causal=True))


@pytest.mark.parametrize("tq", [1, 7])
def test_cuda_decode_and_chunk_with_minus_one_padding(tq):
    # Tq < Tk: query i at position Tk - Tq + i; random unsorted lists with -1 anywhere
    q, k, v = qkv(2, 2, 2, tq, 33, 16, seed=1)
    blocks = random_blocks(2, 2, tq, 33, 8, s=3, seed=tq)
    assert (blocks == -1).any() and (blocks >= 0).any()
    check(q, k, v, blocks, 8)
    check(q, k, v, blocks, 8, scale=0.3)


@pytest.mark.parametrize("group", [1, 3, 4])
def test_cuda_gqa_groups_share_their_kv_heads_block_lists(group):
    hkv = 2
    q, k, v = qkv(1, group * hkv, hkv, 9, 29, 8, seed=2)
    blocks = random_blocks(1, hkv, 9, 29, 8, s=3, drop=0.2, seed=group)
    assert not torch.equal(blocks[:, 0], blocks[:, 1])  # h // G must pick the right list
    check(q, k, v, blocks, 8)


@pytest.mark.parametrize("tq", [33, 9, 1])
def test_cuda_blocks_from_sparse_blocks_selection(tq):
    tk, block_size = 33, 8
    q, k, v = qkv(1, 4, 2, tq, tk, 8, seed=3)
    blocks = sparse_blocks(q, k, kernel_size=4, stride=2, block_size=block_size, init_blocks=1, window=8,
                           topk=1)
    assert blocks.shape[-1] < n_blocks(tk, block_size)  # genuinely sparse: some rows leave blocks out
    check(q, k, v, blocks, block_size)


def test_cuda_row_that_sees_no_key_outputs_zeros():
    tk = tq = 20
    q, k, v = qkv(1, 2, 1, tq, tk, 8, seed=4)
    blocks = all_blocks(1, 1, tq, tk, 8).clone()
    blocks[0, 0, 3] = torch.tensor([2, -1, 1], dtype=torch.int32)  # position 3 lists only future blocks
    blocks[0, 0, 12] = -1  # nothing listed
    out = check(q, k, v, blocks, 8)
    assert torch.equal(out[0, :, [3, 12]], torch.zeros_like(out[0, :, [3, 12]]))
    assert out[0, :, [2, 4, 11, 13]].abs().sum(-1).gt(0).all()  # their neighbours do see keys


def test_cuda_block_listed_twice_counts_once():
    q, k, v = qkv(1, 2, 1, 6, 29, 8, seed=5)
    once = torch.tensor([0, 3, -1, -1], dtype=torch.int32).expand(1, 1, 6, 4).contiguous().to(DEVICE)
    twice = torch.tensor([3, 0, 3, -1], dtype=torch.int32).expand(1, 1, 6, 4).contiguous().to(DEVICE)
    expected = block_sparse_reference(q, k, v, once, 8)
    assert_close(block_sparse_attention(q, k, v, twice, block_size=8, backend="cuda"), expected)


def test_cuda_small_query_tiles():
    # 8-row query tiles: several, the last one partial, with threads past Tq in it
    q, k, v = qkv(1, 4, 2, 19, 23, 8, seed=6)
    blocks = random_blocks(1, 2, 19, 23, 4, s=4, seed=6)
    out = block_sparse_cuda(q, k, v, blocks, nan_like(q), 4, block_q=8)
    assert_close(out, block_sparse_reference(q, k, v, blocks, 4))


def test_cuda_refuses_large_head_dim():
    q, k, v = qkv(1, 1, 1, 2, 2, 136)
    blocks = all_blocks(1, 1, 2, 2, 8)
    with pytest.raises(ValueError, match="backend 'cuda' cannot run these inputs: head dim D <= 128 only"):
        block_sparse_attention(q, k, v, blocks, block_size=8, backend="cuda")
