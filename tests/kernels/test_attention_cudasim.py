"""numba.cuda attention vs the reference, under the simulator (NUMBA_ENABLE_CUDASIM=1) or on a real GPU.

Run in its own process:  NUMBA_ENABLE_CUDASIM=1 python -m pytest tests/kernels/test_attention_cudasim.py
(the variable must be set before numba is imported). Shapes stay <= 32 because the simulator is slow.
"""

import os

import pytest
import torch

if os.environ.get("NUMBA_ENABLE_CUDASIM") != "1" and not torch.cuda.is_available():
    pytest.skip("needs NUMBA_ENABLE_CUDASIM=1 (set before numba is imported) or a CUDA GPU",
                allow_module_level=True)

from minihybrid.kernels.attention import attention, attention_reference
from minihybrid.kernels.attention.cuda import attention_cuda

pytestmark = pytest.mark.cudasim
DEVICE = "cuda" if torch.cuda.is_available() and os.environ.get("NUMBA_ENABLE_CUDASIM") != "1" else "cpu"
ATOL, RTOL = 2e-5, 1e-4  # float32, the only dtype of the CUDA kernel


def _qkv(b, hq, hkv, tq, tk, d, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(b, hq, tq, d, generator=g)
    k = torch.randn(b, hkv, tk, d, generator=g)
    v = torch.randn(b, hkv, tk, d, generator=g)
    return q.to(DEVICE), k.to(DEVICE), v.to(DEVICE)


def _check(q, k, v, **kw):
    out = torch.full_like(q, float("nan"))
    got = attention(q, k, v, backend="cuda", out=out, **kw)
    assert got is out
    torch.testing.assert_close(out.cpu(), attention_reference(q, k, v, **kw).cpu(), atol=ATOL, rtol=RTOL)


@pytest.mark.parametrize("t", [1, 7, 20])
@pytest.mark.parametrize("d", [8, 16])
def test_cuda_causal(t, d):
    _check(*_qkv(1, 2, 2, t, t, d), causal=True)


@pytest.mark.parametrize("causal", [True, False])
def test_cuda_gqa(causal):
    _check(*_qkv(2, 4, 2, 5, 5, 8), causal=causal)  # Hq=4 query heads over Hkv=2 kv heads


@pytest.mark.parametrize("causal,window", [(True, None), (False, None), (True, 5), (False, 5)])
def test_cuda_small_tiles(causal, window):
    # 8-row query tiles and 4-key tiles: several of each, the last ones partial, so the online rescaling runs
    q, k, v = _qkv(1, 4, 2, 19, 23, 8, seed=1)
    out = torch.full_like(q, float("nan"))
    attention_cuda(q, k, v, out, causal=causal, window=window, block_q=8, block_k=4)
    ref = attention_reference(q, k, v, causal=causal, window=window)
    torch.testing.assert_close(out.cpu(), ref.cpu(), atol=ATOL, rtol=RTOL)


@pytest.mark.parametrize("window", [1, 4, 16])
def test_cuda_window(window):
    _check(*_qkv(1, 4, 2, 20, 20, 16), causal=True, window=window)


@pytest.mark.parametrize("tq", [1, 5])
def test_cuda_decode(tq):
    _check(*_qkv(1, 4, 2, tq, 30, 16), causal=True, window=None)
    _check(*_qkv(1, 4, 2, tq, 30, 16), causal=True, window=8, scale=0.3)
