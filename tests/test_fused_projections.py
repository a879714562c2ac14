"""compress.fuse_projections: q/k/v and gate/up of a quantized model run as one kernel call per group,
with the same outputs as separate calls, and fall back to separate calls whenever the stacked storage is
no longer what the modules hold."""

import copy

import pytest
import torch

from minihybrid.compress import QuantScheme, load_quantized, quantize_model, save_quantized, weight_bytes
from minihybrid.compress.modules import QuantLinear
from minihybrid.compress.speed import linear_calls
from tests.test_modules import tiny_model

IDS = torch.randint(0, 64, (2, 12), generator=torch.Generator().manual_seed(0))


def unfused(model):
    copied = copy.deepcopy(model)
    for module in copied.modules():
        module.__dict__.pop("_fused", None)
    return copied


@pytest.fixture
def kernel_calls(monkeypatch):
    calls = []
    kernel = QuantLinear._kernel

    def counted(self, x, arrays, rows):
        calls.append(rows)
        return kernel(self, x, arrays, rows)

    monkeypatch.setattr(QuantLinear, "_kernel", counted)
    return calls


@pytest.mark.parametrize("bits, group_size", [(4, 32), (8, None)])
@pytest.mark.parametrize("rows", [(1, 1), (1, 3), (2, 12)])  # a decode step, a verify step, dequantize + BLAS
def test_fused_groups_give_the_separate_calls_outputs(bits, group_size, rows):
    model = quantize_model(tiny_model(), QuantScheme(bits, group_size))
    ids = IDS[:rows[0], :rows[1]]
    with torch.inference_mode():
        assert torch.equal(model(ids), unfused(model)(ids))


def test_one_kernel_call_per_group(kernel_calls):
    model = quantize_model(tiny_model(), QuantScheme(4, 32))  # 2 blocks: q|k|v, o, gate|up, down; the head
    with torch.inference_mode():
        model(IDS[:1, :1])
        assert kernel_calls == [64 + 32 + 32, 64, 2 * 192, 64] * 2 + [64]
        kernel_calls.clear()
        unfused(model)(IDS[:1, :1])
        assert len(kernel_calls) == 15
    assert weight_bytes(model) == weight_bytes(unfused(model))  # the stack replaced the separate buffers
    assert len(linear_calls(model)) == 9


def test_replaced_buffer_or_hook_falls_back_to_separate_calls(kernel_calls):
    model = quantize_model(tiny_model(), QuantScheme(4, 32))
    k_proj = model.blocks[0].mixer.k_proj
    seen = []
    handle = k_proj.register_forward_hook(lambda *_: seen.append(1))
    with torch.inference_mode():
        model(IDS[:1, :1])
    handle.remove()
    assert seen == [1] and kernel_calls[:3] == [64, 32, 32]
    k_proj.scales = k_proj.scales * 2  # a new tensor: no longer the stack's view
    kernel_calls.clear()
    with torch.inference_mode():
        got = model(IDS[:1, :4])
    assert kernel_calls[:3] == [64, 32, 32]
    with torch.inference_mode():
        assert torch.equal(got, unfused(model)(IDS[:1, :4]))


def test_copies_and_checkpoints_stay_fused_and_independent(tmp_path, kernel_calls):
    model = quantize_model(tiny_model(), QuantScheme(4, 32))
    copied = copy.deepcopy(model)
    with torch.inference_mode():
        before = copied(IDS)
        model.blocks[0].mixer.v_proj.scales.mul_(3)  # writes the original's stack, not the copy's
        assert torch.equal(copied(IDS), before)
        assert not torch.equal(model(IDS), before)
    save_quantized(model, tmp_path / "q.safetensors")
    loaded = load_quantized(tiny_model(), tmp_path / "q.safetensors")
    kernel_calls.clear()
    with torch.inference_mode():
        assert torch.equal(loaded(IDS), model(IDS))
    assert len(kernel_calls) == 2 * 9
