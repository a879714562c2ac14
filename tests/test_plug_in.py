"""minihybrid.plug_in: exercise functions plugged into a real model, per instance, and taken out again."""

import pytest
import torch
from torch import nn

from minihybrid import HybridLM, ModelConfig
from minihybrid.layers.attention import Attention
from minihybrid.layers.norm import RMSNorm
from minihybrid.plug_in import PLUGS, plug_in
from solutions import ex00_foundations as ex00
from solutions import ex01_hybrid as ex01
from solutions import ex02_deconstruct as ex02
from solutions import ex03_sparse as ex03


def tiny_model(pattern: str = "AA") -> HybridLM:
    torch.manual_seed(0)
    model = HybridLM(ModelConfig(vocab_size=61, d_model=32, n_heads=4, n_kv_heads=2, pattern=pattern)).eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, RMSNorm):  # not all ones, so that a norm ignoring its weight shows
                module.weight.uniform_(0.5, 1.5)
    return model


IDS = torch.randint(0, 61, (2, 11), generator=torch.Generator().manual_seed(1))


def counted(function, calls: list):
    def wrapper(*args):
        calls.append(function.__name__)
        return function(*args)

    return wrapper


def assert_library_path(model: HybridLM, expected_logits: torch.Tensor) -> None:
    """No instance of the model holds a plugged function, and the logits are the library's."""
    plugged = {attribute for _, attribute, _ in PLUGS.values()}
    for module in model.modules():
        assert not plugged & set(vars(module))
    torch.testing.assert_close(model(IDS), expected_logits, atol=0, rtol=0)


@torch.no_grad()
def test_plugging_the_solutions_keeps_the_logits():
    model = tiny_model()
    expected, calls = model(IDS), []
    rms_norm, attention = counted(ex00.rms_norm, calls), counted(ex00.causal_gqa_attention, calls)
    with plug_in(model, rms_norm=rms_norm, attention=attention) as plugged:
        torch.testing.assert_close(model(IDS), expected)
    assert plugged == {"rms_norm": 5, "attention": 2}  # two norms per block and the final one
    assert sorted(calls) == ["causal_gqa_attention"] * 2 + ["rms_norm"] * 5
    assert_library_path(model, expected)


@torch.no_grad()
def test_a_wrong_rms_norm_changes_the_logits_until_the_block_ends():
    model = tiny_model()
    expected = model(IDS)
    with plug_in(model, rms_norm=lambda x, weight, eps: ex00.rms_norm(x, torch.ones_like(weight), eps)):
        assert not torch.allclose(model(IDS), expected, atol=1e-3)
    assert_library_path(model, expected)


@torch.no_grad()
def test_nested_plugs_restore_the_outer_one():
    model = tiny_model()
    expected = model(IDS)
    with plug_in(model, rms_norm=lambda x, weight, eps: 2 * ex00.rms_norm(x, weight, eps)):
        wrong = model(IDS)
        with plug_in(model, rms_norm=ex00.rms_norm):
            torch.testing.assert_close(model(IDS), expected)
        torch.testing.assert_close(model(IDS), wrong, atol=0, rtol=0)
    assert_library_path(model, expected)


@torch.no_grad()
def test_everything_is_restored_after_an_exception():
    model = tiny_model()
    expected = model(IDS)

    def stub(x, weight, eps):
        raise NotImplementedError("ex00: implement rms_norm")

    plugged = plug_in(model, rms_norm=stub, attention=ex00.causal_gqa_attention)
    with pytest.raises(NotImplementedError, match="implement rms_norm"), plugged:
        model(IDS)
    assert_library_path(model, expected)


@torch.no_grad()
def test_cached_decoding_and_windowed_mixers_keep_the_library_path():
    model = tiny_model("AS")
    assert isinstance(model.blocks[1].mixer, Attention) and model.blocks[1].mixer.window is not None
    cache = model.init_cache(batch=2, max_len=16)
    expected = torch.cat([model(IDS[:, :-1], cache=cache), model(IDS[:, -1:], cache=cache)], dim=1)
    calls = []
    with plug_in(model, attention=counted(ex00.causal_gqa_attention, calls)):
        cache = model.init_cache(batch=2, max_len=16)
        prefill = model(IDS[:, :-1], cache=cache)
        assert len(calls) == 1  # the full-attention block's prefill; not the windowed block
        step = model(IDS[:, -1:], cache=cache)
        assert len(calls) == 1  # a cached decoding step runs the library's attention
    torch.testing.assert_close(torch.cat([prefill, step], dim=1), expected)


def wrong_shape(q, k, v):
    return q[:, :, :-1]


@pytest.mark.parametrize(
    "model, functions, error, message",
    [
        ("HybridLM", {"rms_norm": ex00.rms_norm}, TypeError, "model must be a torch.nn.Module, got str"),
        (None, {}, ValueError, "nothing to plug in"),
        (None, {"attention": "causal_gqa_attention"}, TypeError, "attention must be a function or None"),
        (nn.Linear(4, 4), {"rms_norm": ex00.rms_norm}, ValueError, "Linear has no RMSNorm to plug rms_norm"),
        (None, {"ssm_scan": ex01.ssd_chunked}, TypeError, "cannot plug in 'ssm_scan'; pluggable: rms_norm"),
        (None, {"ssm_step": ex01.ssm_step}, ValueError, "HybridLM has no Mamba2 to plug ssm_step into"),
    ],
    ids=["not-a-model", "no-function", "not-callable", "no-norm-in-model", "unknown-name", "no-ssm"],
)
def test_bad_arguments_are_refused(model, functions, error, message):
    model = tiny_model() if model is None else model
    with pytest.raises(error, match=message), plug_in(model, **functions):
        pass


@torch.no_grad()
def test_a_result_of_the_wrong_shape_is_named():
    model = tiny_model()
    expected = model(IDS)
    message = r"your attention returned \(2, 4, 10, 8\) torch.float32, expected \(2, 4, 11, 8\)"
    with pytest.raises(ValueError, match=message), plug_in(model, attention=wrong_shape):
        model(IDS)
    assert_library_path(model, expected)


@torch.no_grad()
def test_the_ex01_solutions_run_a_hybrid_prefill_and_decode_unchanged():
    """ssd_chunked serves the prefill, ssm_step every decoding step, fuse_branches the "H" block."""
    model = tiny_model("MHA").double()
    expected = model(IDS)
    calls = []
    names = ("ssm_step", "ssd_chunked", "fuse_branches")
    with plug_in(model, **{name: counted(getattr(ex01, name), calls) for name in names}) as plugged:
        cache = model.init_cache(2, 11)
        prefill = model(IDS[:, :6], cache=cache)
        logits = torch.cat([prefill, *(model(IDS[:, t:t + 1], cache=cache) for t in range(6, 11))], dim=1)
    assert plugged == {"ssm_step": 2, "ssd_chunked": 2, "fuse_branches": 1}
    assert {"ssm_step", "ssd_chunked", "fuse_branches"} <= set(calls)
    torch.testing.assert_close(logits, expected)
    assert_library_path(model, expected)


@torch.no_grad()
def test_an_ssm_step_returning_one_tensor_is_named():
    model = tiny_model("MA")
    cache = model.init_cache(2, 11)
    model(IDS[:, :4], cache=cache)
    with pytest.raises(TypeError, match="your ssm_step must return a tuple of 2 tensors"), \
            plug_in(model, ssm_step=lambda *args: ex01.ssm_step(*args)[0]):
        model(IDS[:, 4:5], cache=cache)


@torch.no_grad()
def test_the_ex02_solutions_run_taylor_and_non_approximate_blocks_unchanged():
    model = tiny_model("TNA").double()
    expected = model(IDS)
    names = ("taylor_linear_attention", "non_approx_scores", "non_approx_attention")
    calls = []
    with plug_in(model, **{name: counted(getattr(ex02, name), calls) for name in names}) as plugged:
        torch.testing.assert_close(model(IDS), expected)
    assert plugged == dict.fromkeys(names, 1) and sorted(calls) == sorted(names)
    assert_library_path(model, expected)


@torch.no_grad()
def test_the_ex03_solutions_run_sparse_switchable_blocks_unchanged():
    sizes = {"kernel_size": 4, "stride": 2, "block_size": 4, "init_blocks": 1, "window": 4, "topk": 1,
             "mode": "sparse"}
    torch.manual_seed(0)
    model = HybridLM(ModelConfig(vocab_size=61, d_model=48, n_heads=6, n_kv_heads=2, pattern="BB",
                                 mixer_options={"B": sizes})).eval().double()
    ids = torch.randint(0, 61, (2, 41), generator=torch.Generator().manual_seed(2))
    expected = model(ids)
    names = ("block_scores", "select_blocks", "block_sparse_attention")
    calls = []

    def counting(name):
        def call(*args, **kwargs):
            calls.append(name)
            return getattr(ex03, name)(*args, **kwargs)
        return call

    with plug_in(model, **{name: counting(name) for name in names}) as plugged:
        torch.testing.assert_close(model(ids), expected)
    assert plugged == dict.fromkeys(names, 2) and set(calls) == set(names)
    torch.testing.assert_close(model(ids), expected, atol=0, rtol=0)
    with pytest.raises(ValueError, match="your select_blocks must return"), \
            plug_in(model, select_blocks=lambda scores, q_pos, **sizes: scores):
        model(ids)
