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

from minihybrid.grading import SOLUTIONS, exercise_functions, exercise_modules
from minihybrid.kernels.attention.reference import attention_reference
from minihybrid.layers.cache import KVCache
from minihybrid.layers.norm import RMSNorm
from minihybrid.layers.rope import Rotary, rope_tables
from solutions import ex00_foundations as ex00


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
