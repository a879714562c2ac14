"""numba.cuda SSD scan vs the reference, under the simulator (NUMBA_ENABLE_CUDASIM=1) or on a real GPU.

Run in its own process:  NUMBA_ENABLE_CUDASIM=1 python -m pytest -m cudasim tests/kernels
(the variable must be set before numba is imported). Shapes stay <= 32 because the simulator is slow.
"""

import pytest
from kernels.helpers import assert_close, nan_like, randn

from minihybrid.kernels import numba_cuda

if not numba_cuda.available():
    pytest.skip("needs NUMBA_ENABLE_CUDASIM=1 (set before numba is imported) or numba.cuda with a GPU",
                allow_module_level=True)

from minihybrid.kernels.scan import ssd_reference, ssd_scan
from minihybrid.kernels.scan.cuda import ssd_cuda
from minihybrid.kernels.scan.speed import make_inputs

pytestmark = pytest.mark.cudasim
DEVICE = numba_cuda.tensor_device()


def inputs(length, batch=1, heads=2, head_dim=8, groups=1, d_state=8, seed=0):
    return make_inputs(length, batch=batch, heads=heads, head_dim=head_dim, groups=groups, d_state=d_state,
                       seed=seed, device=DEVICE)


def initial_state(x, d_state=8):
    batch, _, heads, head_dim = x.shape
    return randn((batch, heads, head_dim, d_state), seed=1, device=DEVICE)[0]


def check(args, state=None, **options):
    """The "cuda" backend fills NaN-prefilled (y, final state) outs that match the reference."""
    y_out, state_out = nan_like(args[0]), nan_like(initial_state(args[0], args[3].shape[-1]))
    y, final = ssd_scan(*args, initial_state=state, backend="cuda", out=(y_out, state_out), **options)
    assert y is y_out and final is state_out
    y_ref, final_ref = ssd_reference(*args, state)
    assert_close(y, y_ref)
    assert_close(final, final_ref)


@pytest.mark.parametrize("length", [1, 17, 32])  # 17, 32: a full 16-token tile, then a partial or full one
@pytest.mark.parametrize("with_state", [False, True], ids=["zero-state", "initial-state"])
def test_cuda_matches_reference(length, with_state):
    args = inputs(length)
    check(args, initial_state(args[0]) if with_state else None)


@pytest.mark.parametrize("heads,groups", [(4, 1), (4, 2), (4, 4)])
def test_cuda_groups(heads, groups):
    args = inputs(9, batch=2, heads=heads, groups=groups)
    check(args, initial_state(args[0]))


def test_cuda_small_tiles_and_wide_state():
    # 3-token tiles (many, the last one partial) and N > P, so the tile copy loops several times per thread
    args = inputs(11, heads=2, head_dim=4, d_state=24, seed=2)
    state = initial_state(args[0], 24)
    y, final = ssd_cuda(*args, state, nan_like(args[0]), nan_like(state), tile=3)
    y_ref, final_ref = ssd_reference(*args, state)
    assert_close(y, y_ref)
    assert_close(final, final_ref)


def test_cuda_refuses_large_state_and_auto_runs_another_backend():
    args = inputs(2, head_dim=2, d_state=264)
    with pytest.raises(ValueError, match="backend 'cuda' cannot run these inputs: state size N <= 256 only"):
        ssd_scan(*args, backend="cuda")
    for got, expected in zip(ssd_scan(*args), ssd_scan(*args, backend="reference")):
        assert_close(got, expected)
