"""numba.cuda attention vs the reference, under the simulator (NUMBA_ENABLE_CUDASIM=1) or on a real GPU.

Run in its own process:  NUMBA_ENABLE_CUDASIM=1 python -m pytest -m cudasim tests/kernels
(the variable must be set before numba is imported). Shapes stay <= 32 because the simulator is slow.
"""

import pytest
from kernels import helpers
from kernels.helpers import assert_close, check_backend, nan_like

from minihybrid.kernels import numba_cuda

if not numba_cuda.available():
    pytest.skip("needs NUMBA_ENABLE_CUDASIM=1 (set before numba is imported) or numba.cuda with a GPU",
                allow_module_level=True)

from minihybrid.kernels.attention import attention, attention_reference
from minihybrid.kernels.attention.cuda import attention_cuda

pytestmark = pytest.mark.cudasim
DEVICE = numba_cuda.tensor_device()


def qkv(b, hq, hkv, tq, tk, d, seed=0):
    return helpers.qkv(b, hq, hkv, tq, tk, d, seed=seed, device=DEVICE)


def check(q, k, v, **kw):
    check_backend(attention, attention_reference, (q, k, v), "cuda", **kw)


@pytest.mark.parametrize("t", [1, 7, 20])
@pytest.mark.parametrize("d", [8, 16])
def test_cuda_causal(t, d):
    check(*qkv(1, 2, 2, t, t, d), causal=True)


@pytest.mark.parametrize("causal", [True, False])
def test_cuda_gqa(causal):
    check(*qkv(2, 4, 2, 5, 5, 8), causal=causal)  # Hq=4 query heads over Hkv=2 kv heads


@pytest.mark.parametrize("causal,window", [(True, None), (False, None), (True, 5), (False, 5)])
def test_cuda_small_tiles(causal, window):
    # 8-row query tiles and 4-key tiles: several of each, the last ones partial, so the online rescaling runs
    q, k, v = qkv(1, 4, 2, 19, 23, 8, seed=1)
    out = attention_cuda(q, k, v, nan_like(q), causal=causal, window=window, block_q=8, block_k=4)
    assert_close(out, attention_reference(q, k, v, causal=causal, window=window))


@pytest.mark.parametrize("window", [1, 4, 16])
def test_cuda_window(window):
    check(*qkv(1, 4, 2, 20, 20, 16), causal=True, window=window)


@pytest.mark.parametrize("tq", [1, 5])
def test_cuda_decode(tq):
    check(*qkv(1, 4, 2, tq, 30, 16), causal=True, window=None)
    check(*qkv(1, 4, 2, tq, 30, 16), causal=True, window=8, scale=0.3)


def test_cuda_refuses_large_head_dim_and_auto_runs_another_backend():
    q, k, v = qkv(1, 1, 1, 2, 2, 136)
    with pytest.raises(ValueError, match="backend 'cuda' cannot run these inputs: head dim D <= 128 only"):
        attention(q, k, v, backend="cuda")
    assert_close(attention(q, k, v), attention(q, k, v, backend="reference"))

