"""SkinnyLinear and use_skinny_linears: a HybridLM with skinny linears decodes like the plain one (same
logits within tolerance, the same greedy tokens), keeps its head tied, trains through F.linear, and its
linears give a k-token verify pass bitwise the rows of k single steps."""

import copy

import pytest
import torch
from torch import nn

from minihybrid import HybridLM, ModelConfig, fast_linear
from minihybrid.compress.modules import linear_names
from minihybrid.fast_linear import MAX_ROWS, SkinnyLinear, use_skinny_linears
from minihybrid.generate import generate

TOL = {"atol": 1e-5, "rtol": 1e-4}


def tiny_model(**overrides) -> HybridLM:
    torch.manual_seed(0)
    return HybridLM(ModelConfig.from_name("tiny", **overrides)).eval()


@pytest.fixture
def kernel_calls(monkeypatch):
    """Counts the SkinnyLinear forwards that run the Numba kernel."""
    calls = []
    kernel = fast_linear.skinny_matmul_cpu

    def counted(*args):
        calls.append(args[0].shape)
        return kernel(*args)

    monkeypatch.setattr(fast_linear, "skinny_matmul_cpu", counted)
    return calls


def test_every_linear_is_swapped_and_parameters_are_shared():
    model = tiny_model()
    plain = copy.deepcopy(model)
    weights = {name: model.get_submodule(name).weight for name in linear_names(model)}
    assert use_skinny_linears(model) is model
    assert all(isinstance(model.get_submodule(name), SkinnyLinear) for name in weights)
    assert all(model.get_submodule(name).weight is w for name, w in weights.items())
    assert model.head.weight is model.embed.weight  # the tied head stays tied
    assert model.state_dict().keys() == plain.state_dict().keys()
    head = model.head
    assert use_skinny_linears(model).head is head  # swapping twice changes nothing


def test_decoding_matches_the_plain_model(kernel_calls):
    plain = tiny_model()
    model = use_skinny_linears(copy.deepcopy(plain))
    ids = torch.randint(0, 256, (1, 24), generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        torch.testing.assert_close(model(ids), plain(ids), **TOL)  # 24 rows: one kernel call per linear
        cache, plain_cache = model.init_cache(1, 40), plain.init_cache(1, 40)
        model(ids[:, :20], cache=cache)
        plain(ids[:, :20], cache=plain_cache)
        kernel_calls.clear()
        for i in range(20, 24):
            torch.testing.assert_close(model(ids[:, i:i + 1], cache=cache),
                                       plain(ids[:, i:i + 1], cache=plain_cache), **TOL)
    assert len(kernel_calls) == 4 * len(linear_names(plain))  # every linear of every step ran the kernel
    prompt = ids[:, :8]
    assert torch.equal(generate(model, prompt, 16).tokens, generate(plain, prompt, 16).tokens)


def test_verify_pass_logits_are_bitwise_single_steps():
    """With skinny linears every part of a cached step is batch invariant (the linears, the RMSNorm loop,
    the fused decode attention, elementwise ops), so a verify pass over k tokens gives exactly the logits of
    k single-token steps: greedy speculative decoding on this engine is lossless by construction."""
    model = use_skinny_linears(tiny_model())
    ids = torch.randint(0, 256, (1, 14), generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        verify, steps = model.init_cache(1, 32), model.init_cache(1, 32)
        model(ids[:, :6], cache=verify)
        model(ids[:, :6], cache=steps)
        together = model(ids[:, 6:], cache=verify)
        alone = torch.cat([model(ids[:, i:i + 1], cache=steps) for i in range(6, 14)], dim=1)
    assert torch.equal(together, alone)


def test_verify_pass_linears_are_bitwise_single_steps():
    """Each linear's output rows in a k-token cached pass equal, bitwise, the linear applied to each row
    alone, and its inputs and outputs in the first block equal those of k single steps."""
    model = use_skinny_linears(tiny_model())
    ids = torch.randint(0, 256, (1, 14), generator=torch.Generator().manual_seed(2))
    records: dict[str, list] = {}
    for name in linear_names(model):
        model.get_submodule(name).register_forward_hook(
            lambda m, args, out, name=name: records.setdefault(name, []).append((args[0], out)))
    with torch.inference_mode():
        verify, steps = model.init_cache(1, 32), model.init_cache(1, 32)
        model(ids[:, :6], cache=verify)
        model(ids[:, :6], cache=steps)
        records.clear()
        model(ids[:, 6:], cache=verify)  # k = 8 rows
        for i in range(6, 14):
            model(ids[:, i:i + 1], cache=steps)
        for name, ((x, y), *singles) in records.items():
            linear = model.get_submodule(name)
            assert torch.equal(y, torch.cat([linear(x[:, i:i + 1]) for i in range(x.shape[1])], dim=1)), name
            if name.startswith("blocks.0.mixer.") and name[-6:] in ("q_proj", "k_proj", "v_proj"):
                assert torch.equal(x, torch.cat([s[0] for s in singles], dim=1))
                assert torch.equal(y, torch.cat([s[1] for s in singles], dim=1)), name


def test_training_goes_through_f_linear(kernel_calls):
    plain = tiny_model().train()
    model = use_skinny_linears(copy.deepcopy(plain))
    ids = torch.randint(0, 256, (2, 5), generator=torch.Generator().manual_seed(3))
    losses = [nn.functional.cross_entropy(m(ids[:, :-1]).flatten(0, 1), ids[:, 1:].flatten())
              for m in (plain, model)]
    for loss in losses:
        loss.backward()
    assert not kernel_calls
    torch.testing.assert_close(losses[1], losses[0])
    for name in linear_names(plain):
        grad = model.get_submodule(name).weight.grad
        assert grad is not None
        torch.testing.assert_close(grad, plain.get_submodule(name).weight.grad)
    model.head.weight.data.add_(1.0)
    assert torch.equal(model.embed.weight, model.head.weight)


@pytest.mark.parametrize("bias", [False, True])
def test_skinny_linear_matches_nn_linear_on_every_path(bias, kernel_calls):
    torch.manual_seed(0)
    linear = nn.Linear(100, 130, bias=bias)
    linear64 = copy.deepcopy(linear).double()
    x = torch.randn(3, 4, 100)
    cases = {  # name: (nn.Linear, input, whether the kernel runs)
        "rows": (linear, x[:1, :3], True),
        "max-rows": (linear, torch.randn(MAX_ROWS, 100), True),
        "rank1": (linear, x[0, 0], True),
        "too-many-rows": (linear, torch.randn(MAX_ROWS + 1, 100), False),
        "non-contiguous": (linear, x[:, :2].transpose(0, 1), False),
        "float64": (linear64, x[:1].double(), False),
    }
    for name, (plain, inp, runs) in cases.items():
        kernel_calls.clear()
        with torch.no_grad():
            torch.testing.assert_close(SkinnyLinear(plain)(inp), plain(inp), **TOL)
        assert len(kernel_calls) == runs, name
    kernel_calls.clear()
    SkinnyLinear(linear)(x[:1]).sum().backward()  # autograd on: F.linear, gradients reach the shared weight
    assert not kernel_calls and linear.weight.grad is not None


def test_skinny_linear_needs_a_linear():
    with pytest.raises(TypeError, match="SkinnyLinear wraps an nn.Linear, got Conv1d"):
        SkinnyLinear(nn.Conv1d(2, 2, 1))
