"""Every registered mixer letter meets the interface of minihybrid/layers/__init__.py.

Parametrized over `MIXERS`, so a mixer is tested the moment it is registered: output shapes and gradients,
cached decoding equal to the full forward on odd lengths, `cache_bytes` equal to what `init_cache`
allocates, rollback exact or refused with a clear error, and `skip_layers` passing the residual through.
"""

import pytest
import torch

from minihybrid import HybridLM, ModelConfig
from minihybrid.layers import MIXERS

LETTERS = sorted(MIXERS)
ODD_LENGTHS = (1, 7, 63, 100, 201)  # past the sliding window's 64 tokens, and past its 128-slot ring
TOL = {"atol": 3e-5, "rtol": 1e-4}


def model_of(letter: str, n_layers: int = 2, seed: int = 0) -> HybridLM:
    torch.manual_seed(seed)
    config = ModelConfig(vocab_size=53, d_model=48, n_heads=4, n_kv_heads=2, pattern=letter * n_layers,
                         max_seq_len=256)
    return HybridLM(config).eval()


def ids(batch: int, length: int, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, 53, (batch, length), generator=torch.Generator().manual_seed(seed))


def decode(model, x, cache, start):
    """Logits of x[:, start:] fed one token at a time into `cache` (which holds x[:, :start])."""
    steps = [model(x[:, t:t + 1], cache=cache) for t in range(start, x.shape[1])]
    return torch.cat(steps, dim=1) if steps else x.new_zeros(x.shape[0], 0, model.config.vocab_size).float()


@pytest.mark.parametrize("letter", LETTERS)
def test_mixer_keeps_shape_and_trains(letter):
    model = model_of(letter).train()
    mixer = model.blocks[0].mixer
    x = torch.randn(2, 11, 48, requires_grad=True)
    y = mixer(x)
    assert y.shape == x.shape and y.dtype == x.dtype
    y.square().mean().backward()
    grads = [p.grad for p in mixer.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads) and torch.isfinite(x.grad).all()


@pytest.mark.parametrize("letter", LETTERS)
@pytest.mark.parametrize("length", ODD_LENGTHS)
def test_cached_decoding_equals_full_forward(letter, length):
    model = model_of(letter)
    x = ids(2, length)
    with torch.no_grad():
        full = model(x)
        for prefill in sorted({1, length // 2 or 1, length}):
            cache = model.init_cache(2, length)
            stepwise = torch.cat([model(x[:, :prefill], cache=cache), decode(model, x, cache, prefill)], 1)
            torch.testing.assert_close(stepwise, full, **TOL)
            assert cache.pos == length


@pytest.mark.parametrize("letter", LETTERS)
@pytest.mark.parametrize("max_len", [1, 50, 256])
def test_cache_bytes_match_the_allocated_cache(letter, max_len):
    model = model_of(letter)
    assert model.init_cache(1, max_len).nbytes == sum(model.cache_bytes(max_len))
    assert model.init_cache(3, max_len).nbytes == 3 * sum(model.cache_bytes(max_len))


def rollback_and_continue(model, x, full, cache, pos):
    """Roll back to pos and check that decoding on gives the full forward's logits; a refusal must be a
    clear ValueError that leaves the cache as it was (decoding then goes on from where it stood)."""
    before = cache.pos
    try:
        cache.rollback(pos)
    except ValueError as error:
        assert "roll back" in str(error) or "snapshot" in str(error), error
        assert cache.pos == before
        pos = before
    assert cache.pos == pos
    torch.testing.assert_close(decode(model, x, cache, pos), full[:, pos:], **TOL)


@pytest.mark.parametrize("letter", LETTERS)
@pytest.mark.parametrize("prefill,drafted,back_to", [(40, 6, 40), (200, 6, 100)])
def test_rollback_is_exact_or_refused_clearly(letter, prefill, drafted, back_to):
    """A short rollback (speculative decoding's) and a long one past any ring buffer's slack."""
    model = model_of(letter)
    x = ids(1, 230)
    with torch.no_grad():
        full = model(x)
        cache = model.init_cache(1, 230)
        model(x[:, :prefill], cache=cache)
        decode(model, x[:, :prefill + drafted], cache, prefill)
        rollback_and_continue(model, x, full, cache, back_to)


@pytest.mark.parametrize("letter", LETTERS)
def test_skip_layers_pass_the_residual_through(letter):
    model = model_of(letter, n_layers=3)
    x = ids(2, 9)
    with torch.no_grad():
        logits, hidden = model(x, skip_layers={1}, return_hidden=True)
        torch.testing.assert_close(hidden[2], hidden[1])
        assert not torch.allclose(hidden[3], hidden[2])
        assert logits.shape == (2, 9, 53)
