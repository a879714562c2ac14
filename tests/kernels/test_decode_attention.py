"""kernels/attention/decode_cpu.py: the fused decode step (rotary, cache write, attention) against the
layer's torch path (Rotary, KVCache.update, SDPA), and the layer's choice between the two."""

import pytest
import torch

from minihybrid import HybridLM, ModelConfig
from minihybrid.kernels.attention.decode_cpu import decode_attention_cpu
from minihybrid.kernels.attention.sdpa import attention_sdpa
from minihybrid.layers import attention
from minihybrid.layers.cache import KVCache
from minihybrid.layers.rope import Rotary, rope_tables


@pytest.mark.parametrize("batch, t, hq, hkv, d, start", [
    (1, 1, 9, 3, 64, 0), (1, 1, 9, 3, 64, 37), (2, 5, 4, 2, 6, 11), (1, 9, 3, 3, 2, 1), (3, 16, 6, 1, 10, 0)])
def test_kernel_matches_rotary_cache_and_sdpa(batch, t, hq, hkv, d, start):
    g = torch.Generator().manual_seed(start + t)
    q, k, v = (torch.randn(batch, t, h, d, generator=g) for h in (hq, hkv, hkv))
    old = torch.randn(batch, hkv, start, d, generator=g)
    want_cache, got_cache = (KVCache(batch, hkv, d, start + t + 3) for _ in range(2))
    for cache in (want_cache, got_cache):
        if start:
            cache.update(old, old.flip(-1), 0)
    qr, kr = Rotary(d)(q.transpose(1, 2), k.transpose(1, 2), start)
    keys, values, _ = want_cache.update(kr, v.transpose(1, 2), start)
    want = attention_sdpa(qr, keys, values, causal=True).transpose(1, 2)
    cos, sin = rope_tables(d, 10000.0, start + t, q.device, q.dtype)
    got = decode_attention_cpu(q, k, v, cos, sin, *got_cache.claim(start, t), start, d ** -0.5)
    torch.testing.assert_close(got, want, atol=2e-6, rtol=2e-5)
    torch.testing.assert_close(got_cache.k, want_cache.k, atol=2e-6, rtol=2e-5)
    assert torch.equal(got_cache.v, want_cache.v) and got_cache.length == want_cache.length == start + t


def test_a_query_gets_the_same_bits_whatever_the_number_of_new_tokens():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 6, h, 8, generator=g) for h in (4, 2, 2))
    cos, sin = rope_tables(8, 10000.0, 6, q.device, q.dtype)
    together = decode_attention_cpu(q, k, v, cos, sin, *KVCache(1, 2, 8, 6).claim(0, 6), 0, 0.5)
    cache = KVCache(1, 2, 8, 6)
    for i in range(6):
        one = decode_attention_cpu(q[:, i:i + 1], k[:, i:i + 1], v[:, i:i + 1], cos, sin,
                                   *cache.claim(i, 1), i, 0.5)
        assert torch.equal(one[:, 0], together[:, i])


def test_claim_refuses_a_window_and_an_overflow():
    with pytest.raises(ValueError, match="ring buffer"):
        KVCache(1, 1, 4, 8, window=4).claim(0, 1)
    with pytest.raises(ValueError, match="overflows"):
        KVCache(1, 1, 4, 8).claim(6, 3)


@pytest.mark.parametrize("pattern, backend, fused", [("AA", "torch", True), ("AA", "reference", False),
                                                     ("SS", "torch", False)])
def test_model_decoding_takes_the_kernel_where_it_applies(monkeypatch, pattern, backend, fused):
    calls = []
    monkeypatch.setattr(attention, "_decode_attention",
                        lambda *a: calls.append(1) or decode_attention_cpu(*a))
    torch.manual_seed(0)
    model = HybridLM(ModelConfig(vocab_size=64, d_model=64, n_heads=4, n_kv_heads=2, pattern=pattern,
                                 max_seq_len=64, attn_backend=backend)).eval()
    ids = torch.randint(0, 64, (2, 30))
    with torch.inference_mode():
        full = model(ids)
        cache = model.init_cache(2, 30)
        steps = [model(ids[:, :attention.DECODE_TOKENS + 1], cache=cache)]  # a prompt: torch path
        steps += [model(ids[:, i:i + 1], cache=cache) for i in range(attention.DECODE_TOKENS + 1, 25)]
        steps.append(model(ids[:, 25:], cache=cache))  # a verify step
    torch.testing.assert_close(torch.cat(steps, 1), full, atol=1e-5, rtol=1e-4)
    assert len(calls) == (2 * 9 if fused else 0)
