"""numba.cuda quantized matmul vs the reference, under the simulator (NUMBA_ENABLE_CUDASIM=1) or on a real
GPU.

Run in its own process:  NUMBA_ENABLE_CUDASIM=1 python -m pytest -m cudasim tests/kernels
(the variable must be set before numba is imported). Shapes stay <= 32 because the simulator is slow.
"""

import pytest
import torch

from minihybrid.kernels import numba_cuda

if not numba_cuda.available():
    pytest.skip("needs NUMBA_ENABLE_CUDASIM=1 (set before numba is imported) or numba.cuda with a GPU",
                allow_module_level=True)

from minihybrid.kernels.quant_matmul import pack_codes, quant_matmul, quant_matmul_reference

pytestmark = pytest.mark.cudasim
DEVICE = numba_cuda.tensor_device()


def inputs(shape, k, n, bits, group_size, symmetric, seed=0):
    """x (*shape, k) and a random (n, k) weight: packed codes, scales, mins (see test_quant_matmul.py)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(*shape, k, generator=g)
    codes = torch.randint(0, 2**bits, (n, k), generator=g)
    scales = (torch.rand(n, k // group_size, generator=g) + 0.5) / 2**bits
    mins = -scales * 2 ** (bits - 1) if symmetric else torch.rand(n, k // group_size, generator=g) - 0.75
    return [t.to(DEVICE) for t in (x, pack_codes(codes, bits), scales, mins)]


def check(x, packed, scales, mins, bits, group_size):
    """The "cuda" backend fills a NaN-prefilled out that matches the reference (computed in float64)."""
    out = torch.full((*x.shape[:-1], packed.shape[0]), float("nan"), device=DEVICE)
    got = quant_matmul(x, packed, scales, mins, bits=bits, group_size=group_size, backend="cuda", out=out)
    assert got is out
    expected = quant_matmul_reference(x.double(), packed, scales, mins, bits, group_size)
    torch.testing.assert_close(out.cpu().double(), expected.cpu(), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("bits", [4, 8])
@pytest.mark.parametrize("k,group_size", [(32, 8), (32, 16), (32, 32), (24, 24)],
                         ids=["K32g8", "K32g16", "K32-per-channel", "K24-per-channel"])
@pytest.mark.parametrize("rows,n", [(1, 1), (3, 7), (9, 32), (2, 31)])
def test_cuda_matches_reference(bits, k, group_size, rows, n):
    for symmetric in (True, False):
        check(*inputs((rows,), k, n, bits, group_size, symmetric, seed=rows + n), bits, group_size)


def test_cuda_leading_batch_dims():
    x, packed, scales, mins = inputs((2, 3), 32, 5, 4, 16, symmetric=False)
    check(x, packed, scales, mins, 4, 16)


def test_cuda_more_outputs_than_one_block():
    # N = 33: a second block whose threads past N leave early
    check(*inputs((2,), 16, 33, 4, 8, symmetric=True), 4, 8)
