"""Your exercise functions beside their library twins, in a notebook: one line per function.

    compare_to_library({"segsum": (lambda: ex.segsum(a), lambda: segsum(a)), ...})
          segsum: max |difference| = 0.0e+00 -> matches the library
     ssd_chunked: not yet (ex01: implement ssd_chunked)

Each check is a pair of zero-argument calls, yours and the library's, returning tensors, tuples or lists of
them, or strings. A stub says "not yet"; an answer that raises is shown and the others carry on.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def max_difference(yours, library) -> float:
    """The largest |difference| between two results (inf when strings or structure differ)."""
    if isinstance(library, torch.Tensor):  # equal entries count as 0 (-inf minus -inf is nan)
        if not isinstance(yours, torch.Tensor) or yours.shape != library.shape:
            return float("inf")
        if library.numel() == 0:
            return 0.0
        return torch.where(yours == library, 0.0, (yours - library).abs()).max().item()
    if isinstance(library, str):
        return 0.0 if yours == library else float("inf")
    if not isinstance(yours, (tuple, list)) or len(yours) != len(library):
        return float("inf")
    return max((max_difference(mine, theirs) for mine, theirs in zip(yours, library)), default=0.0)


def compare_to_library(checks: dict[str, tuple[Callable, Callable]], tolerance: float = 1e-4):
    """Print and return one verdict per check: not yet / raised ... / matches / DIFFERS."""
    verdicts = {}
    width = max(map(len, checks), default=0)
    for name, (yours, library) in checks.items():
        try:
            diff = max_difference(yours(), library())
        except NotImplementedError as stub:
            verdicts[name] = f"not yet ({stub})"
        except (RuntimeError, ValueError, TypeError, IndexError, AttributeError) as error:  # shown, go on
            verdicts[name] = f"raised {type(error).__name__}: {error}"
        else:
            verdict = "matches the library" if diff < tolerance else "DIFFERS from the library"
            verdicts[name] = f"max |difference| = {diff:.1e} -> {verdict}"
        print(f"{name:>{width}}: {verdicts[name]}")
    return verdicts
