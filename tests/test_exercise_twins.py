"""Exercises meet the library: every solution function names its library twin, the twin names it back, and
the two agree on random inputs of awkward shapes.

A solution's docstring has one line ``Library twin: <dotted.path>``; that object's docstring has one line
``Exercise twin: exNN.<function> (...)``. AGREEMENT holds one check per pair, keyed "exNN.<function>": a new
exercise module is picked up from solutions/ex*_*.py, and its functions fail here until each has a check.
"""

import functools
import importlib
import inspect
import pkgutil
import re
from collections.abc import Callable

import pytest
import torch

from minihybrid.compress.gptq import gptq_quantize
from minihybrid.compress.prune import two_four_mask, wanda_scores
from minihybrid.compress.quantize import QuantScheme, fit_groups, quantize_weight
from minihybrid.config import ModelConfig
from minihybrid.grading import SOLUTIONS, exercise_functions, exercise_modules
from minihybrid.kernels.attention.reference import attention_reference
from minihybrid.kernels.block_sparse.reference import block_sparse_reference
from minihybrid.kernels.block_sparse.select import (
    block_scores,
    compress_keys,
    select_blocks,
    sparse_blocks,
    visible_windows,
)
from minihybrid.kernels.quant_matmul.reference import dequantize, pack_codes, unpack_codes
from minihybrid.kernels.scan import segsum, ssd_chunked, ssd_reference, ssd_step
from minihybrid.layer_select import dp_skip_set, layer_runner
from minihybrid.layers.cache import KVCache
from minihybrid.layers.intra_hybrid import fuse_branches
from minihybrid.layers.non_approx import causal_softmax_average, same_token_scores
from minihybrid.layers.norm import RMSNorm
from minihybrid.layers.rope import Rotary, rope_tables
from minihybrid.layers.taylor import taylor_features, taylor_linear, taylor_quadratic
from minihybrid.model import HybridLM
from minihybrid.patterns import CONFIGURATIONS, PLACEMENTS, configuration_pattern, expand_ratio
from minihybrid.speculative import accept_greedy, accept_sampled
from solutions import ex00_foundations as ex00
from solutions import ex01_hybrid as ex01
from solutions import ex02_deconstruct as ex02
from solutions import ex03_sparse as ex03
from solutions import ex04_layerskip as ex04
from solutions import ex05_compress as ex05


def solution_functions() -> dict[str, Callable]:
    """"exNN.<function>" -> the solution function, for every function of every solutions/ex*_*.py."""
    found = {}
    for exercise, module_name in exercise_modules(SOLUTIONS).items():
        module = importlib.import_module(f"solutions.{module_name}")
        for name in exercise_functions(SOLUTIONS / f"{module_name}.py"):
            found[f"{exercise}.{name}"] = functools.reduce(getattr, name.split("."), module)
    return found


SOLUTION_FUNCTIONS = solution_functions()
AGREEMENT: dict[str, Callable[[], None]] = {}


def agreement(key: str):
    """Register the decorated function as the numeric check of the twin pair ``key``."""

    def register(check: Callable[[], None]) -> Callable[[], None]:
        AGREEMENT[key] = check
        return check

    return register


def randn(*shape: int, seed: int = 0, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


@pytest.mark.parametrize("key", SOLUTION_FUNCTIONS)
def test_solution_names_its_library_twin_and_the_twin_names_it_back(key):
    paths = re.findall(r"^Library twin: (.*)$", inspect.getdoc(SOLUTION_FUNCTIONS[key]) or "", re.MULTILINE)
    assert len(paths) == 1, f"{key}: its docstring needs exactly one line 'Library twin: <dotted.path>'"
    twin = pkgutil.resolve_name(paths[0].strip())
    back = inspect.getdoc(twin) or ""
    assert re.search(rf"^Exercise twin: {re.escape(key)}\b", back, re.MULTILINE), (
        f"the docstring of {paths[0]} needs a line 'Exercise twin: {key} (...)'"
    )


def test_every_twin_pair_has_an_agreement_check():
    pairs, checked = SOLUTION_FUNCTIONS.keys(), AGREEMENT.keys()
    missing, stale = sorted(pairs - checked), sorted(checked - pairs)
    assert not missing and not stale, f"add @agreement checks for {missing}, remove those for {stale}"


@pytest.mark.parametrize("key", AGREEMENT)
@torch.no_grad()
def test_solution_agrees_with_its_library_twin(key):
    AGREEMENT[key]()


@agreement("ex00.rms_norm")
def _():
    cases = [((3, 5, 7), torch.float32, 1e-5), ((1, 1), torch.float64, 1e-2), ((2, 9, 33), torch.bfloat16, 0)]
    for seed, (shape, dtype, eps) in enumerate(cases):
        norm = RMSNorm(shape[-1], eps).to(dtype)
        norm.weight.copy_(1 + randn(shape[-1], seed=seed + 10))
        x = 3 * randn(*shape, seed=seed, dtype=dtype)
        torch.testing.assert_close(ex00.rms_norm(x, norm.weight, eps), norm(x))


@agreement("ex00.rope_cos_sin")
def _():
    cases = [(2, 10000.0, [0]), (6, 500000.0, list(range(37, 50))), (34, 10000.0, [9, 2, 70])]
    for head_dim, base, positions in cases:
        cos, sin = ex00.rope_cos_sin(torch.tensor(positions), head_dim, base)
        table_cos, table_sin = rope_tables(head_dim, base, max(positions) + 1, "cpu", torch.float32)
        torch.testing.assert_close(cos, table_cos[positions])
        torch.testing.assert_close(sin, table_sin[positions])


@agreement("ex00.apply_rope")
def _():
    cases = [(2, 6, 2, 5, 8, 0), (1, 3, 1, 1, 2, 17), (1, 4, 4, 13, 34, 3)]  # B, Hq, Hkv, T, D, start_pos
    for seed, (B, Hq, Hkv, T, D, start) in enumerate(cases):
        q, k = randn(B, Hq, T, D, seed=seed), randn(B, Hkv, T, D, seed=seed + 10)
        tables = rope_tables(D, 10000.0, start + T, "cpu", torch.float32)
        cos, sin = (table[start : start + T] for table in tables)
        q_rotated, k_rotated = Rotary(D)(q, k, start)
        torch.testing.assert_close(ex00.apply_rope(q, cos, sin), q_rotated)
        torch.testing.assert_close(ex00.apply_rope(k, cos, sin), k_rotated)


@agreement("ex00.causal_gqa_attention")
def _():
    cases = [(2, 6, 2, 7, 16, torch.float32), (1, 4, 4, 1, 8, torch.float64), (3, 9, 3, 33, 6, torch.float64)]
    for seed, (B, Hq, Hkv, T, D, dtype) in enumerate(cases):
        q, k, v = (randn(B, H, T, D, seed=seed + s, dtype=dtype) for H, s in ((Hq, 0), (Hkv, 10), (Hkv, 20)))
        expected = attention_reference(q, k, v, causal=True)
        torch.testing.assert_close(ex00.causal_gqa_attention(q, k, v), expected)


@agreement("ex00.decode_step")
def _():
    cases = [(2, 6, 2, 8, 0, 3), (1, 4, 1, 16, 6, 9), (3, 3, 3, 2, 4, 5)]  # B, Hq, Hkv, D, pos, max_len
    for seed, (B, Hq, Hkv, D, pos, max_len) in enumerate(cases):
        q_new = randn(B, Hq, 1, D, seed=seed, dtype=torch.float64)
        k, v = (randn(B, Hkv, pos + 1, D, seed=seed + s, dtype=torch.float64) for s in (10, 20))
        cache = KVCache(B, Hkv, D, max_len, dtype=torch.float64)
        cache.update(k[:, :, :pos], v[:, :, :pos], 0)
        keys, values, key_pos = cache.update(k[:, :, pos:], v[:, :, pos:], pos)
        assert key_pos is None
        k_cache, v_cache = torch.zeros_like(cache.k), torch.zeros_like(cache.v)
        k_cache[:, :, :pos], v_cache[:, :, :pos] = k[:, :, :pos], v[:, :, :pos]
        out = ex00.decode_step(q_new, k[:, :, pos:], v[:, :, pos:], k_cache, v_cache, pos)
        torch.testing.assert_close(out, attention_reference(q_new, keys, values, causal=True))
        torch.testing.assert_close(k_cache[:, :, : pos + 1], keys)
        torch.testing.assert_close(v_cache[:, :, : pos + 1], values)


def ssm_inputs(batch, length, heads, groups, p, n, seed=0, dtype=torch.float32):
    """x, dt, A, B, C of a scan: dt > 0, A < 0."""
    x = randn(batch, length, heads, p, seed=seed, dtype=dtype)
    dt = torch.nn.functional.softplus(randn(batch, length, heads, seed=seed + 1, dtype=dtype))
    A = -torch.exp(randn(heads, seed=seed + 2, dtype=dtype))
    B, C = (randn(batch, length, groups, n, seed=seed + s, dtype=dtype) for s in (3, 4))
    return x, dt, A, B, C


@agreement("ex01.ssm_step")
def _():
    cases = [(2, 4, 2, 3, 5, torch.float32), (1, 3, 1, 1, 1, torch.float64), (3, 6, 6, 4, 2, torch.float64)]
    for seed, (batch, H, G, P, N, dtype) in enumerate(cases):
        inputs = ssm_inputs(batch, 1, H, G, P, N, seed, dtype)
        x, dt, A, B, C = (t[:, 0] if t.dim() > 1 else t for t in inputs)  # one token: drop T
        state = randn(batch, H, P, N, seed=seed + 10, dtype=dtype)
        y, new_state = ex01.ssm_step(state, x, dt, A, B, C)
        expected_y, expected_state = ssd_step(state, x, dt, A, B, C)
        torch.testing.assert_close(y, expected_y)
        torch.testing.assert_close(new_state, expected_state)


@agreement("ex01.segsum")
def _():
    cases = [((1,), torch.float32), ((7,), torch.float64), ((2, 3, 4, 33), torch.float32)]
    for seed, (shape, dtype) in enumerate(cases):
        a = -torch.exp(randn(*shape, seed=seed, dtype=dtype))
        torch.testing.assert_close(ex01.segsum(a), segsum(a))


@agreement("ex01.ssd_chunked")
def _():
    cases = [  # batch, T, H, G, P, N, chunk_size, initial state, dtype
        (2, 1, 2, 1, 3, 4, 64, True, torch.float32),
        (1, 37, 4, 2, 3, 5, 8, False, torch.float64),
        (2, 65, 3, 3, 2, 4, 64, True, torch.float64),
        (1, 100, 4, 1, 8, 16, 16, True, torch.float32),
    ]
    for seed, (batch, T, H, G, P, N, Q, with_state, dtype) in enumerate(cases):
        x, dt, A, B, C = ssm_inputs(batch, T, H, G, P, N, seed, dtype)
        state = randn(batch, H, P, N, seed=seed + 10, dtype=dtype) if with_state else None
        y, final_state = ex01.ssd_chunked(x, dt, A, B, C, initial_state=state, chunk_size=Q)
        for twin in (ssd_chunked, ssd_reference):
            expected_y, expected_state = twin(x, dt, A, B, C, initial_state=state, chunk_size=Q)
            torch.testing.assert_close(y, expected_y, atol=1e-4, rtol=1e-4)
            torch.testing.assert_close(final_state, expected_state, atol=1e-4, rtol=1e-4)


@agreement("ex01.expand_pattern")
def _():
    for a in range(5):
        for b in range(13):
            for n_layers in (None, *((a + b) * k for k in (1, 2, 3) if a + b)):
                for placement in ("", *(f"@{name}" for name in PLACEMENTS)):
                    pattern = f"{a}:{b}{placement}"
                    try:
                        expected = expand_ratio(pattern, n_layers, other="M", attention="G")
                    except ValueError:
                        with pytest.raises(ValueError):
                            ex01.expand_pattern(pattern, n_layers, other="M", attention="G")
                        continue
                    got = ex01.expand_pattern(pattern, n_layers, other="M", attention="G")
                    assert got == expected, f"{pattern} with n_layers={n_layers}"
    for pattern, n_layers in [("1:5", 8), ("1:5@nowhere", None), ("1-5", None), ("1:5", 0), ("-1:2", None)]:
        with pytest.raises(ValueError):
            expand_ratio(pattern, n_layers)
        with pytest.raises(ValueError):
            ex01.expand_pattern(pattern, n_layers)


@agreement("ex01.fuse_branches")
def _():
    cases = [  # shape, dtype, eps
        ((2, 7, 16), torch.float32, 1e-5),
        ((1, 1, 8), torch.float64, 1e-2),
        ((3, 5, 24), torch.float32, 1e-6),
    ]
    for seed, (shape, dtype, eps) in enumerate(cases):
        attn_out = 3 * randn(*shape, seed=seed, dtype=dtype)
        ssm_out = 0.1 * randn(*shape, seed=seed + 1, dtype=dtype)
        weights = (1 + randn(shape[-1], seed=seed + s, dtype=dtype) for s in (2, 3))
        branches = (attn_out, ssm_out, *weights)
        for fusion in ("concat", "diff"):
            out = ex01.fuse_branches(*branches, fusion=fusion, eps=eps)
            torch.testing.assert_close(out, fuse_branches(*branches, fusion=fusion, eps=eps))


@agreement("ex02.taylor_features")
def _():
    cases = [((1,), torch.float32), ((5, 3), torch.float64), ((2, 3, 4, 16), torch.float32)]
    for seed, (shape, dtype) in enumerate(cases):
        x = randn(*shape, seed=seed, dtype=dtype)
        torch.testing.assert_close(ex02.taylor_features(x), taylor_features(x))


@agreement("ex02.taylor_linear_attention")
def _():
    cases = [  # B, H, T, f, Dv, chunk_size of the library's linear form, dtype
        (2, 3, 1, 3, 4, 64, torch.float32),
        (1, 2, 37, 1, 5, 8, torch.float64),
        (2, 2, 65, 16, 8, 64, torch.float64),
        (1, 4, 100, 4, 16, 16, torch.float32),
    ]
    for seed, (B, H, T, f, Dv, chunk_size, dtype) in enumerate(cases):
        q, k = randn(B, H, T, f, seed=seed, dtype=dtype), randn(B, H, T, f, seed=seed + 10, dtype=dtype)
        v = randn(B, H, T, Dv, seed=seed + 20, dtype=dtype)
        out = ex02.taylor_linear_attention(q, k, v)
        for expected in (taylor_linear(q, k, v, chunk_size=chunk_size)[0], taylor_quadratic(q, k, v)):
            torch.testing.assert_close(out, expected, atol=1e-4, rtol=1e-4)


@agreement("ex02.non_approx_scores")
def _():
    cases = [(2, 3, 1, 1, torch.float32), (1, 2, 7, 16, torch.float64), (3, 1, 65, 3, torch.float32)]
    for seed, (B, H, T, D, dtype) in enumerate(cases):
        q, k = randn(B, H, T, D, seed=seed, dtype=dtype), randn(B, H, T, D, seed=seed + 10, dtype=dtype)
        torch.testing.assert_close(ex02.non_approx_scores(q, k), same_token_scores(q, k))


@agreement("ex02.non_approx_attention")
def _():
    cases = [  # B, H, T, Dv, score scale, dtype
        (2, 3, 1, 4, 1.0, torch.float32),
        (1, 2, 7, 16, 3.0, torch.float64),
        (2, 2, 65, 8, 1e3, torch.float64),
        (1, 4, 33, 5, 1e3, torch.float32),
    ]
    for seed, (B, H, T, Dv, scale, dtype) in enumerate(cases):
        s, v = scale * randn(B, H, T, seed=seed, dtype=dtype), randn(B, H, T, Dv, seed=seed + 10, dtype=dtype)
        out = ex02.non_approx_attention(s, v)
        assert torch.isfinite(out).all()
        torch.testing.assert_close(out, causal_softmax_average(s, v)[0], atol=1e-5, rtol=1e-5)


@agreement("ex02.build_configuration")
def _():
    requests = [(name, n) for name in (*CONFIGURATIONS, "skip", "every 3rd") for n in range(26)]
    requests += [([], 3), ([0, 2], 4), ([5, 1, 5], 6), ((0,), 1), ([3], 3), ([-1], 2), (list(range(8)), 8)]
    for configuration, n_layers in requests:
        try:
            expected = configuration_pattern(configuration, "N", n_layers, standard="S")
        except ValueError:
            with pytest.raises(ValueError):
                ex02.build_configuration(configuration, "N", n_layers, standard="S")
            continue
        got = ex02.build_configuration(configuration, "N", n_layers, standard="S")
        assert got == expected, f"{configuration!r} with n_layers={n_layers}"


@agreement("ex03.compress_keys")
def _():
    cases = [  # B, Hkv, Tk, D, kernel_size, stride, dtype
        (2, 3, 1, 5, 8, 4, torch.float32),
        (1, 2, 31, 8, 8, 4, torch.float32),
        (2, 2, 100, 16, 32, 16, torch.float32),
        (1, 1, 33, 3, 32, 16, torch.float64),
        (1, 2, 64, 4, 4, 4, torch.float32),
    ]
    for seed, (B, Hkv, T, D, kernel_size, stride, dtype) in enumerate(cases):
        k = randn(B, Hkv, T, D, seed=seed, dtype=dtype)
        expected = compress_keys(k, kernel_size, stride)  # sums in float32, whatever k's dtype
        torch.testing.assert_close(ex03.compress_keys(k, kernel_size, stride), expected, atol=1e-6, rtol=1e-6)


@agreement("ex03.visible_windows")
def _():
    positions = [torch.arange(100), torch.tensor([64, 0, 31, 47, 48, 7, 257]), torch.tensor([5])]
    for q_pos in positions:
        for kernel_size, stride, windows in ((32, 16, 15), (8, 4, 30), (4, 4, 0), (16, 16, 3)):
            expected = visible_windows(q_pos, windows, kernel_size, stride)
            assert torch.equal(ex03.visible_windows(q_pos, windows, kernel_size, stride), expected)


@agreement("ex03.block_scores")
def _():
    cases = [  # B, Hq, Hkv, Tk, Tq, D, kernel_size, stride, block_size
        (2, 2, 2, 33, 33, 8, 8, 4, 16),
        (1, 6, 2, 100, 40, 16, 32, 16, 64),
        (1, 4, 1, 31, 31, 4, 4, 4, 8),
        (2, 3, 1, 257, 9, 8, 32, 16, 64),
        (1, 2, 1, 5, 5, 8, 8, 4, 16),  # no full window
    ]
    for seed, (B, Hq, Hkv, Tk, Tq, D, kernel_size, stride, block_size) in enumerate(cases):
        q, k = randn(B, Hq, Tq, D, seed=seed), randn(B, Hkv, Tk, D, seed=seed + 10)
        kc, q_pos = compress_keys(k, kernel_size, stride), torch.arange(Tk - Tq, Tk)
        sizes = {"kernel_size": kernel_size, "stride": stride, "block_size": block_size}
        for n_blocks in (-(-Tk // block_size), (Tk - Tq) // block_size + 1):  # all blocks, the first row's
            got = ex03.block_scores(q, kc, q_pos, **sizes, n_blocks=n_blocks)
            torch.testing.assert_close(got, block_scores(q, kc, q_pos, **sizes, n_blocks=n_blocks))


@agreement("ex03.select_blocks")
def _():
    cases = [  # B, Hkv, n_blocks, q_pos, block_size, init_blocks, window, topk
        (1, 2, 10, torch.arange(40), 4, 1, 8, 2),
        (2, 1, 13, torch.tensor([51, 3, 49, 20, 48, 0, 33, 12]), 4, 2, 4, 3),
        (1, 1, 5, torch.tensor([79, 15, 16, 47, 66]), 16, 0, 32, 0),
        (1, 2, 3, torch.tensor([0, 5, 9, 11]), 4, 1, 8, 4),
        (2, 2, 33, torch.arange(0, 2100, 7), 64, 1, 256, 4),
    ]
    for seed, (B, Hkv, n_blocks, q_pos, block_size, init_blocks, window, topk) in enumerate(cases):
        generator = torch.Generator().manual_seed(seed)
        rows = [torch.randperm(n_blocks, generator=generator) for _ in range(B * Hkv * len(q_pos))]
        scores = (torch.stack(rows).float() / n_blocks).reshape(B, Hkv, len(q_pos), n_blocks)  # no ties
        sizes = {"block_size": block_size, "init_blocks": init_blocks, "window": window, "topk": topk}
        assert torch.equal(ex03.select_blocks(scores, q_pos, **sizes), select_blocks(scores, q_pos, **sizes))


@agreement("ex03.block_sparse_attention")
def _():
    cases = [  # B, Hq, Hkv, Tq, Tk, D, dtype
        (1, 2, 2, 1, 1, 4, torch.float32),
        (2, 6, 2, 31, 31, 8, torch.float64),
        (1, 4, 1, 5, 100, 16, torch.float32),
        (1, 3, 3, 33, 257, 5, torch.float64),
    ]
    sizes = {"kernel_size": 8, "stride": 4, "block_size": 16, "init_blocks": 1, "window": 16, "topk": 2}
    for seed, (B, Hq, Hkv, Tq, Tk, D, dtype) in enumerate(cases):
        q = randn(B, Hq, Tq, D, seed=seed, dtype=dtype)
        k, v = (randn(B, Hkv, Tk, D, seed=seed + s, dtype=dtype) for s in (10, 20))
        selected = sparse_blocks(q, k, **sizes)
        n_blocks = -(-Tk // 16)
        random = torch.randint(-1, n_blocks, (B, Hkv, Tq, 3), generator=torch.Generator().manual_seed(seed))
        for blocks in (selected, random):
            expected = block_sparse_reference(q, k, v, blocks, 16)
            torch.testing.assert_close(ex03.block_sparse_attention(q, k, v, blocks, block_size=16), expected)


@agreement("ex04.accept_greedy")
def _():
    g = torch.Generator().manual_seed(0)
    for n in range(9):
        for _ in range(10):
            target = torch.randint(0, 3, (n + 1,), generator=g)
            other = torch.randint(0, 3, (n,), generator=g)
            drafted = torch.where(torch.rand(n, generator=g) < 0.8, target[:n], other)
            assert ex04.accept_greedy(drafted, target) == accept_greedy(drafted, target)


def windowed_cache(window: int, max_len: int, writes: list[tuple[int, int]]) -> KVCache:
    """A sliding-window KVCache after writing, in order, the positions [start, end) of each (start, end); a
    write that starts before the cache's length first rolls it back there (as a speculative round does)."""
    cache = KVCache(1, 2, 4, max_len, window=window)
    for start, end in writes:
        if start < cache.length:
            cache.rollback(start)
        cache.update(randn(1, 2, end - start, 4, seed=start), randn(1, 2, end - start, 4, seed=end), start)
    return cache


@agreement("ex04.rollback_ring")
def _():
    cases = [  # window, max_len, writes: a prefill longer than the ring, single tokens, a rollback
        (4, 200, [(0, 100), (100, 101), (101, 102)]),
        (8, 300, [(0, 50), *((p, p + 1) for p in range(50, 90))]),
        (3, 40, [(0, 10), (10, 14)]),  # max_len < window + slack: the ring never wraps
        (5, 200, [(0, 80), (80, 85), (82, 84)]),  # rolled back to 82 and rewritten: written stays 85
    ]
    for window, max_len, writes in cases:
        written = windowed_cache(window, max_len, writes).written
        for pos in range(max(written - KVCache.SLACK - window - 2, 0), written + 1):
            cache = windowed_cache(window, max_len, writes)
            key_pos = cache.key_pos.clone()
            try:
                cache.rollback(pos)
            except ValueError:
                with pytest.raises(ValueError):
                    ex04.rollback_ring(key_pos, cache.written, window, pos)
                continue
            assert torch.equal(ex04.rollback_ring(key_pos, cache.written, window, pos), cache.key_pos)


def residual_stack(n_layers: int, d: int, dtype: torch.dtype, seed: int):
    """(full_states (L + 1, d), run_layer) of L random residual layers x -> x + s_i tanh(x W_i)."""
    weights = randn(n_layers, d, d, seed=seed, dtype=dtype) / d**0.5
    scales = torch.rand(n_layers, generator=torch.Generator().manual_seed(seed), dtype=dtype)

    def run_layer(i: int, x: torch.Tensor) -> torch.Tensor:
        return x + scales[i] * torch.tanh(x @ weights[i])

    states = [randn(1, d, seed=seed + 10, dtype=dtype)]
    for i in range(n_layers):
        states.append(run_layer(i, states[-1]))
    return torch.cat(states), run_layer


@agreement("ex04.clasp_skip_set")
def _():
    for seed, (n_layers, d, dtype) in enumerate([(1, 4, torch.float64), (6, 16, torch.float32),
                                                 (9, 8, torch.float64)]):
        full_states, run_layer = residual_stack(n_layers, d, dtype, seed)
        for n_skip in range(n_layers + 1):
            expected = dp_skip_set(full_states, run_layer, n_skip).skip_set
            assert ex04.clasp_skip_set(full_states, run_layer, n_skip) == expected
    # the real model: a tiny 6-block transformer's states of its last prompt token, blocks run over its cache
    model = HybridLM(ModelConfig.from_name("tiny", pattern="AAAAAA")).eval()
    cache = model.init_cache(1, 16)
    prompt = torch.randint(0, 256, (1, 9), generator=torch.Generator().manual_seed(0))
    _, hidden = model(prompt, cache=cache, return_hidden=True)
    full_states, run_layer = torch.cat([h[0, -1:] for h in hidden]), layer_runner(model, cache, 8)
    for n_skip in range(7):
        expected = dp_skip_set(full_states, run_layer, n_skip).skip_set
        assert ex04.clasp_skip_set(full_states, run_layer, n_skip) == expected
    for bad in (-1, 7):
        for twin in (dp_skip_set, ex04.clasp_skip_set):
            with pytest.raises(ValueError):
                twin(full_states, run_layer, bad)


@agreement("ex04.accept_sampled")
def _():
    g = torch.Generator().manual_seed(0)
    for n in range(6):
        for _ in range(20):
            q = torch.softmax(2 * torch.randn(n, 7, generator=g), dim=-1)
            p = torch.softmax(2 * torch.randn(n + 1, 7, generator=g), dim=-1)
            drafted = torch.multinomial(q, 1, generator=g)[:, 0] if n else torch.zeros(0, dtype=torch.long)
            u = torch.rand(n, generator=g)
            k, dist = ex04.accept_sampled(drafted, q, p, u)
            expected_k, expected_dist = accept_sampled(drafted, q, p, u)
            assert k == expected_k
            torch.testing.assert_close(dist, expected_dist)


@agreement("ex05.quantize_groups")
def _():
    for seed, (bits, group_size, symmetric) in enumerate([(4, 32, True), (4, 64, False), (8, None, True)]):
        w = randn(7, 192, seed=seed) * torch.linspace(0.1, 3, 192)
        codes, scales, mins = ex05.quantize_groups(w, bits, group_size or 192, symmetric)
        q = quantize_weight(w, QuantScheme(bits, group_size, symmetric))  # None: per-channel, one group of K
        assert torch.equal(codes, unpack_codes(q.packed, bits))
        torch.testing.assert_close((scales, mins), (q.scales, q.mins))


@agreement("ex05.pack_int4")
def _():
    codes = torch.randint(0, 16, (5, 34), generator=torch.Generator().manual_seed(0))
    assert torch.equal(ex05.pack_int4(codes), pack_codes(codes, 4))


@agreement("ex05.dequantize_groups")
def _():
    g = torch.Generator().manual_seed(0)
    for bits, group_size in ((4, 32), (8, 64), (4, 128)):
        codes = torch.randint(0, 2**bits, (3, 128), generator=g)
        groups = 128 // group_size
        scales, mins = torch.rand(3, groups, generator=g), torch.randn(3, groups, generator=g)
        packed = pack_codes(codes, bits)
        torch.testing.assert_close(ex05.dequantize_groups(packed, scales, mins, bits, group_size),
                                   dequantize(packed, scales, mins, bits, group_size))


@agreement("ex05.wanda_scores")
def _():
    w, x = randn(6, 40, seed=1), randn(50, 40, seed=2) * torch.linspace(0, 3, 40)
    hessian = 2 * x.T @ x / 50
    torch.testing.assert_close(ex05.wanda_scores(w, x) * (2 / 50) ** 0.5, wanda_scores(w, hessian))


@agreement("ex05.two_four_mask")
def _():
    scores = torch.stack([torch.randperm(48, generator=torch.Generator().manual_seed(i)) for i in range(5)])
    assert torch.equal(ex05.two_four_mask(scores.float()), two_four_mask(scores.float()))
    ties = torch.tensor([[1.0, 1.0, 1.0, 1.0, 2.0, 0.0, 2.0, 2.0]])
    assert torch.equal(ex05.two_four_mask(ties), two_four_mask(ties))


@agreement("ex05.gptq_block")
def _():
    for bits in (4, 8):
        w = randn(9, 48, seed=bits)
        x = randn(200, 48, seed=10 + bits) @ (torch.eye(48) + 0.5 * randn(48, 48, seed=3))
        hessian = 2 * x.T @ x / 200
        scheme = QuantScheme(bits, None)
        q = gptq_quantize(w, hessian, scheme, block_columns=48)
        damped = hessian + 0.01 * hessian.diagonal().mean() * torch.eye(48)
        u = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(damped)), upper=True)
        scales, mins = fit_groups(w, scheme)
        codes, _ = ex05.gptq_block(w, u, scales[:, 0], mins[:, 0], bits)
        assert (codes != unpack_codes(q.packed, bits)).sum() <= 1  # a rounding edge may flip one code
