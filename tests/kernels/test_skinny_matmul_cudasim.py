"""numba.cuda skinny matmul vs the reference, and its batch invariance, under the simulator
(NUMBA_ENABLE_CUDASIM=1) or on a real GPU.

Run in its own process:  NUMBA_ENABLE_CUDASIM=1 python -m pytest -m cudasim tests/kernels
(the variable must be set before numba is imported). Shapes stay <= 32 because the simulator is slow.
"""

import pytest
import torch
from kernels.helpers import randn

from minihybrid.kernels import numba_cuda

if not numba_cuda.available():
    pytest.skip("needs NUMBA_ENABLE_CUDASIM=1 (set before numba is imported) or numba.cuda with a GPU",
                allow_module_level=True)

from minihybrid.kernels.skinny_matmul import skinny_matmul, skinny_matmul_reference

pytestmark = pytest.mark.cudasim
DEVICE = numba_cuda.tensor_device()


def check(x, w):
    """The "cuda" backend fills a NaN-prefilled out that matches the reference (computed in float64)."""
    out = torch.full((*x.shape[:-1], w.shape[0]), float("nan"), device=DEVICE)
    got = skinny_matmul(x, w, backend="cuda", out=out)
    assert got is out
    expected = skinny_matmul_reference(x.double(), w.double())
    torch.testing.assert_close(out.cpu().double(), expected.cpu(), atol=1e-4, rtol=1e-4)
    return out


@pytest.mark.parametrize("rows,k,n", [(1, 1, 1), (3, 31, 7), (9, 32, 32), (2, 33, 5), (17, 20, 3)])
def test_cuda_matches_reference(rows, k, n):
    check(*randn((rows, k), (n, k), seed=rows + k + n, device=DEVICE))


def test_cuda_leading_batch_dims():
    check(*randn((2, 3, 24), (5, 24), device=DEVICE))


def test_cuda_more_outputs_than_one_block():
    # N = 33: a second block whose threads past N leave their outputs unwritten
    check(*randn((2, 16), (33, 16), device=DEVICE))


def test_cuda_rows_are_bitwise_the_same_for_any_number_of_rows():
    x, w = randn((9, 24), (6, 24), device=DEVICE)
    singles = torch.cat([check(row[None], w) for row in x])
    assert torch.equal(check(x, w), singles)
    assert torch.equal(check(x[3:], w), singles[3:])
