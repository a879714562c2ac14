"""GPTQ: equals RTN when H = I, beats it on correlated inputs, dead columns, damping, groups refitted on the
updated weights, and a whole tiny model quantized block by block."""

import copy
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from minihybrid import HybridLM, ModelConfig
from minihybrid.compress import QuantEmbedding, QuantLinear, QuantScheme, quantize_model, quantize_weight
from minihybrid.compress.gptq import gptq_model, gptq_quantize

SCHEMES = [QuantScheme(4, 32), QuantScheme(4, 128), QuantScheme(4, None), QuantScheme(8, 128),
           QuantScheme(4, 64, symmetric=False), QuantScheme(8, None, symmetric=False)]


def weight(n=48, k=256, seed=0) -> torch.Tensor:
    return torch.randn(n, k, generator=torch.Generator().manual_seed(seed)) * 0.05


def correlated_inputs(k=256, tokens=4096, rank=24, seed=1) -> torch.Tensor:
    """X (tokens, k): a few shared factors plus a little noise, so input features are strongly correlated."""
    gen = torch.Generator().manual_seed(seed)
    factors = torch.randn(tokens, rank, generator=gen) @ torch.randn(rank, k, generator=gen)
    return factors + 0.1 * torch.randn(tokens, k, generator=gen)


def hessian(x: torch.Tensor) -> torch.Tensor:
    return 2 * x.T @ x / x.shape[0]


def output_error(x, w, qweight) -> float:
    return (x @ w.T - x @ qweight.dequantize().T).norm().item()


@pytest.mark.parametrize("scheme", SCHEMES, ids=lambda s: s.name)
def test_identity_hessian_is_rtn(scheme):
    w = weight()
    got, rtn = gptq_quantize(w, torch.eye(256), scheme), quantize_weight(w, scheme)
    for field in ("packed", "scales", "mins"):
        assert torch.equal(getattr(got, field), getattr(rtn, field)), field
    assert got.scheme == scheme


@pytest.mark.parametrize("scheme", SCHEMES, ids=lambda s: s.name)
def test_beats_rtn_on_correlated_inputs(scheme):
    w, x = weight(), correlated_inputs()
    h = hessian(x)
    w_before, h_before = w.clone(), h.clone()
    got = gptq_quantize(w, h, scheme)
    assert torch.equal(w, w_before) and torch.equal(h, h_before)  # inputs left as they were
    assert output_error(x, w, got) < 0.8 * output_error(x, w, quantize_weight(w, scheme))


def test_small_blocks_match_the_error_bound_too():
    w, x = weight(), correlated_inputs()
    scheme = QuantScheme(4, 32)
    rtn = output_error(x, w, quantize_weight(w, scheme))
    assert output_error(x, w, gptq_quantize(w, hessian(x), scheme, block_columns=32)) < 0.8 * rtn


def test_dead_columns_are_zeroed():
    w, x = weight(), correlated_inputs()
    dead = [3, 100, 255]
    x[:, dead] = 0
    h = hessian(x)
    assert (h.diagonal()[dead] == 0).all()
    got = gptq_quantize(w, h, QuantScheme(4, 32)).dequantize()
    assert torch.isfinite(got).all() and (got[:, dead] == 0).all()
    assert output_error(x, w, gptq_quantize(w, h, QuantScheme(4, 32))) < 0.8 * output_error(
        x, w, quantize_weight(w, QuantScheme(4, 32)))


def test_groups_are_fitted_on_the_updated_weights():
    """The second group's weights start at zero; only the first group's propagated errors make them
    nonzero. Scales fitted on the original weights would be all-zero groups' scale 1 (a useless grid)."""
    x = correlated_inputs(k=64)
    w = weight(k=64)
    w[:, 32:] = 0
    got = gptq_quantize(w, hessian(x), QuantScheme(4, 32))
    assert (quantize_weight(w, QuantScheme(4, 32)).scales[:, 1] == 1).all()  # what RTN fits
    assert (got.scales[:, 1] < 0.1).all() and (got.scales[:, 1] > 0).all()
    assert got.dequantize()[:, 32:].abs().sum() > 0  # the compensation is represented
    assert output_error(x, w, got) < 0.8 * output_error(x, w, quantize_weight(w, QuantScheme(4, 32)))


def test_singular_hessian_needs_no_retry():
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(512, 1, generator=gen) @ torch.randn(1, 64, generator=gen)  # rank 1: H is singular
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the default damping alone makes H positive definite
        got = gptq_quantize(weight(k=64), hessian(x), QuantScheme(4, 32))
    assert torch.isfinite(got.dequantize()).all()


def test_damping_retries_then_gives_up():
    h = torch.eye(32)
    h[0, 1] = h[1, 0] = 9.0  # eigenvalue -8: positive definite only from damping 10 (= 1000 x 0.01) on
    with pytest.warns(RuntimeWarning, match="not positive definite with damping") as caught:
        got = gptq_quantize(weight(k=32), h, QuantScheme(8, None))
    assert len(caught) == 3 and torch.isfinite(got.dequantize()).all()
    h[0, 1] = h[1, 0] = 1000.0
    with pytest.warns(RuntimeWarning), pytest.raises(ValueError, match="not positive definite even with"):
        gptq_quantize(weight(k=32), h, QuantScheme(8, None))


@pytest.mark.parametrize("h,kwargs,match", [
    (torch.eye(128), {}, r"need W \(N, K\) and H \(K, K\)"),
    (torch.full((256, 256), float("nan")), {}, "finite with a non-negative diagonal"),
    (-torch.eye(256), {}, "finite with a non-negative diagonal"),
    (torch.eye(256), {"block_columns": 48}, "block_columns=48 must be a multiple of the group size 32"),
    (torch.eye(256), {"block_columns": 0}, "block_columns must be an int >= 1"),
    (torch.eye(256), {"damp": 0.0}, "damp must be a number > 0"),
])
def test_bad_inputs(h, kwargs, match):
    with pytest.raises(ValueError, match=match):
        gptq_quantize(weight(), h, QuantScheme(4, 32), **kwargs)


def test_gptq_model_quantizes_every_linear_and_stays_close():
    torch.manual_seed(0)
    config = ModelConfig(vocab_size=61, d_model=64, n_heads=4, n_kv_heads=2, max_seq_len=32, pattern="AA",
                         init_std=0.1)
    model = HybridLM(config).eval()
    ids = torch.randint(61, (16, 32), generator=torch.Generator().manual_seed(1))
    scheme = QuantScheme(4, 32)
    with torch.no_grad():
        reference = model(ids)
        rtn = quantize_model(copy.deepcopy(model), scheme)(ids)
        quantized = gptq_model(model, ids, scheme)
        logits = quantized(ids)
    assert not any(isinstance(m, nn.Linear) for m in quantized.modules())
    assert sum(isinstance(m, QuantLinear) for m in quantized.modules()) == 2 * 7 + 1
    assert isinstance(quantized.embed, QuantEmbedding) and quantized.embed.head is quantized.head

    def loss(out):
        return F.cross_entropy(out[:, :-1].reshape(-1, 61), ids[:, 1:].reshape(-1)).item()

    assert abs(loss(logits) - loss(reference)) < 0.05
    assert (logits - reference).norm() < (rtn - reference).norm()
