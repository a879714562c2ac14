"""Block-sparse attention backends vs the reference (dense attention under the block mask): the Numba CPU
kernel on odd lengths and GQA groups of 1, 3 and 4, with InfLLM-V2's block lists and with random ones; the
reference itself against dense causal attention when every block is listed; and the op's input checks."""

import pytest
import torch
from kernels.helpers import ODD_LENGTHS, assert_close, check_backend, dtype_id, nan_like, qkv

from minihybrid.kernels.attention import attention_reference
from minihybrid.kernels.block_sparse import block_mask, block_sparse_attention, block_sparse_reference
from minihybrid.kernels.block_sparse.cpu import block_sparse_cpu
from minihybrid.kernels.block_sparse.select import sparse_blocks

SMALL = {"kernel_size": 8, "stride": 4, "block_size": 16, "init_blocks": 1, "window": 16, "topk": 2}


def random_blocks(b, hkv, tq, tk, block_size, s, seed=0):
    """Distinct random block indices per row (future ones included: the causal mask must drop them), with
    -1 scattered anywhere."""
    g = torch.Generator().manual_seed(seed)
    n_blocks = -(-tk // block_size)
    order = torch.rand(b, hkv, tq, n_blocks, generator=g).argsort(-1)[..., :s]
    holes = torch.rand(order.shape, generator=g) < 0.3
    return order.masked_fill(holes, -1).to(torch.int32)


def check(backend, q, k, v, blocks, block_size):
    return check_backend(lambda *a, **kw: block_sparse_attention(*a, block_size=block_size, **kw),
                         lambda *a: block_sparse_reference(*a, block_size), (q, k, v, blocks), backend)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=dtype_id)
@pytest.mark.parametrize("hq,hkv", [(3, 3), (9, 3), (8, 2)], ids=["G1", "G3", "G4"])
@pytest.mark.parametrize("t", ODD_LENGTHS)
def test_numba_matches_reference_on_selected_blocks(t, hq, hkv, dtype):
    q, k, v = qkv(2, hq, hkv, t, t, 32, dtype)
    check("numba", q, k, v, sparse_blocks(q, k, **SMALL), SMALL["block_size"])


@pytest.mark.parametrize("hq,hkv", [(3, 3), (9, 3), (8, 2)], ids=["G1", "G3", "G4"])
@pytest.mark.parametrize("tq,tk", [(1, 257), (1, 1), (5, 100), (63, 257), (100, 100)])
def test_numba_matches_reference_on_random_blocks(tq, tk, hq, hkv):
    q, k, v = qkv(2, hq, hkv, tq, tk, 16, torch.float64)
    check("numba", q, k, v, random_blocks(2, hkv, tq, tk, 16, 5), 16)


def test_numba_small_query_tiles():
    # a tile of 3 rows: many tiles whose rows select different blocks
    q, k, v = qkv(1, 6, 2, 37, 41, 16, torch.float64)
    blocks = random_blocks(1, 2, 37, 41, 8, 4, seed=3)
    out = block_sparse_cpu(q, k, v, blocks, nan_like(q), 8, None, block_q=3)
    assert_close(out, block_sparse_reference(q, k, v, blocks, 8))


@pytest.mark.parametrize("backend", ["reference", "numba"])
@pytest.mark.parametrize("tq,tk", [(63, 63), (1, 100), (7, 257)])
def test_every_block_listed_equals_dense_causal_attention(backend, tq, tk):
    q, k, v = qkv(2, 9, 3, tq, tk, 32, torch.float64)
    every = torch.arange(-(-tk // 16), dtype=torch.int32).expand(2, 3, tq, -1).contiguous()
    assert_close(block_sparse_attention(q, k, v, every, block_size=16, backend=backend),
                 attention_reference(q, k, v, causal=True))


def test_topk_covering_every_block_equals_dense():
    q, k, v = qkv(1, 9, 3, 100, 100, 32, torch.float64)
    blocks = sparse_blocks(q, k, **{**SMALL, "topk": 10})
    assert_close(block_sparse_attention(q, k, v, blocks, block_size=16), attention_reference(q, k, v))


@pytest.mark.parametrize("backend", ["reference", "numba"])
def test_a_row_that_sees_no_key_outputs_zeros(backend):
    q, k, v = qkv(1, 2, 1, 4, 40, 8, torch.float64)
    blocks = torch.tensor([[[[0, 1], [2, -1], [-1, -1], [1, 2]]]], dtype=torch.int32)  # row 2: no block
    out = block_sparse_attention(q, k, v, blocks, block_size=16, backend=backend)
    assert torch.equal(out[:, :, 2], torch.zeros_like(out[:, :, 2]))
    assert torch.isfinite(out).all() and out[:, :, [0, 1, 3]].abs().sum() > 0


def test_block_mask_is_the_listed_blocks_cut_causally():
    # 2 queries at positions 4 and 5 of 6 keys in blocks of 2: row 0 lists blocks 0 and 2, row 1 block 1
    blocks = torch.tensor([[[[0, 2], [1, -1]]]])
    expected = torch.tensor([[1, 1, 0, 0, 1, 0], [0, 0, 1, 1, 0, 0]], dtype=torch.bool)
    assert torch.equal(block_mask(blocks, 6, 2)[0, 0], expected)


def test_reference_gradients_flow_through_the_listed_blocks_only():
    q, k, v = (t.requires_grad_() for t in qkv(1, 2, 1, 8, 32, 8, torch.float64))
    blocks = torch.tensor([[[[1, -1]] * 8]])  # every query lists block 1 (keys 16-31) only
    block_sparse_attention(q, k, v, blocks, block_size=16).sum().backward()
    assert k.grad[:, :, :16].abs().sum() == 0 and k.grad[:, :, 24:].abs().sum() > 0


# --- bad input -------------------------------------------------------------------------------------

def _bad_inputs():
    q, k, v = qkv(1, 4, 2, 8, 20, 16)
    blocks = torch.zeros(1, 2, 8, 2, dtype=torch.int32)
    return [
        ("blocks-shape", {"blocks": blocks[:, :1]}, r"blocks must be \(B, Hkv, Tq, S\)"),
        ("blocks-empty", {"blocks": blocks[..., :0]}, "S >= 1"),
        ("blocks-dtype", {"blocks": blocks.float()}, "blocks must be int32 or int64"),
        ("blocks-high", {"blocks": blocks + 2}, "block index 2 is outside -1..1"),
        ("blocks-low", {"blocks": blocks - 2}, "block index -2 is outside"),
        ("block-size", {"block_size": 0}, "block_size must be an int >= 1"),
        ("gqa", {"q": qkv(1, 3, 2, 8, 8, 16)[0]}, "multiple of kv heads"),
        ("tq>tk", {"k": k[:, :, :4].contiguous(), "v": v[:, :, :4].contiguous()}, "more queries than keys"),
        ("kv-shape", {"v": v[:, :, :4].contiguous()}, "k and v shapes differ"),
        ("dtype-backend", {"q": q.half(), "k": k.half(), "v": v.half()}, "not supported by backend 'numba'"),
        ("contiguous", {"q": q.transpose(2, 3).contiguous().transpose(2, 3)}, "q must be contiguous"),
        ("backend", {"backend": "torch"}, "unknown backend 'torch'"),
    ]


@pytest.mark.parametrize("name,change,match", _bad_inputs(), ids=[case[0] for case in _bad_inputs()])
def test_validation_errors(name, change, match):
    q, k, v = qkv(1, 4, 2, 8, 20, 16)
    args = {"q": q, "k": k, "v": v, "blocks": torch.zeros(1, 2, 8, 2, dtype=torch.int32), "block_size": 16,
            "backend": "numba"} | change
    with pytest.raises(ValueError, match=match):
        block_sparse_attention(args.pop("q"), args.pop("k"), args.pop("v"), args.pop("blocks"), **args)


def test_blocks_must_be_a_tensor():
    with pytest.raises(TypeError, match="blocks must be a torch.Tensor"):
        block_sparse_attention(*qkv(1, 2, 2, 4, 4, 8), [[0]], block_size=4)
