"""kernels/rms_norm_cpu.py against F.rms_norm, and RMSNorm's choice between the two."""

import pytest
import torch
import torch.nn.functional as F

from minihybrid.kernels import rms_norm_cpu as kernel
from minihybrid.layers import norm
from minihybrid.layers.norm import RMSNorm


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (3, 577), (2, 5, 576), (64, 33)])
@pytest.mark.parametrize("eps", [1e-5, 0.5])
def test_kernel_matches_torch(shape, eps):
    g = torch.Generator().manual_seed(sum(shape))
    x = torch.randn(shape, generator=g) * 4
    x[..., 0] = 0.0 if shape[-1] > 1 else x[..., 0]
    weight = torch.randn(shape[-1], generator=g)
    torch.testing.assert_close(kernel.rms_norm_cpu(x, weight, eps), F.rms_norm(x, weight.shape, weight, eps),
                               atol=2e-6, rtol=2e-6)


def test_zero_rows_stay_zero():
    assert torch.equal(kernel.rms_norm_cpu(torch.zeros(2, 9), torch.ones(9), 1e-5), torch.zeros(2, 9))


def test_layer_takes_the_kernel_for_decode_rows_only(monkeypatch):
    calls = []
    monkeypatch.setattr(norm, "_rms_norm_cpu", lambda *a: calls.append(a) or kernel.rms_norm_cpu(*a))
    layer = RMSNorm(16)
    with torch.inference_mode():
        layer(torch.randn(1, 3, 16))  # a verify step
        layer(torch.randn(1, norm.DECODE_ROWS + 1, 16))  # a prompt
        layer(torch.randn(1, 3, 16).to(torch.bfloat16))
    layer(torch.randn(1, 3, 16, requires_grad=True)).sum().backward()  # training
    assert len(calls) == 1 and layer.weight.grad is not None
