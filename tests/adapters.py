"""The only door graded tests use to reach an implementation of the exercises.

The environment variable ``MINIHYBRID_IMPL`` picks which one:

    exercises          (default) your answers in exercises/, as you run the tests while working
    solutions          the reference answers in solutions/
    mutant:<path.py>   the reference answers with the functions defined in <path.py> swapped in; the file's
                       folder names the exercise it targets (tests/mutants/ex00/*.py -> ex00), other
                       exercises get the reference answers. tools/check_grader.py uses deliberately wrong
                       mutants to prove the graded tests catch mistakes.

Graded tests call ``load("ex00").rms_norm(...)`` and never import exercises/ or solutions/. The exercises
are the files solutions/ex*_*.py (see minihybrid.grading), so a new exercise file needs no edit here.
"""

import functools
import importlib
import importlib.util
import inspect
import os
import types
from pathlib import Path

from minihybrid.grading import SOLUTIONS, exercise_module, exercise_modules

ENV_VAR = "MINIHYBRID_IMPL"
MODULES = exercise_modules(SOLUTIONS)  # exercise id -> module name in exercises/ and solutions/


class MutantError(ValueError):
    """A mutant file that cannot apply: not in an exercise's folder, or redefining no known function."""


def implementation() -> str:
    """The implementation ``MINIHYBRID_IMPL`` selects: exercises, solutions or mutant:<path>."""
    return os.environ.get(ENV_VAR, "exercises")


def load(exercise: str) -> types.ModuleType:
    """The module implementing ``exercise`` in the selected implementation; ValueError if it is unknown."""
    return _load(exercise, implementation())


@functools.cache
def _load(exercise: str, impl: str) -> types.ModuleType:
    module = exercise_module(exercise, SOLUTIONS)
    if impl in ("exercises", "solutions"):
        return importlib.import_module(f"{impl}.{module}")
    if not impl.startswith("mutant:"):
        raise ValueError(f"{ENV_VAR}={impl!r}: expected 'exercises', 'solutions' or 'mutant:<path to .py>'")
    path = Path(impl.removeprefix("mutant:")).resolve()
    if not path.is_file() or path.parent.name not in MODULES:
        raise MutantError(f"{path}: not a mutant file in a folder named after an exercise {list(MODULES)}")
    solution = importlib.import_module(f"solutions.{module}")
    return _with_mutant(solution, path) if path.parent.name == exercise else solution


def _with_mutant(solution: types.ModuleType, path: Path) -> types.ModuleType:
    """A copy of ``solution`` with the functions defined in the mutant file ``path`` replacing its own."""
    spec = importlib.util.spec_from_file_location(f"mutant_{path.parent.name}_{path.stem}", path)
    if spec is None:
        raise MutantError(f"cannot load mutant {path}")
    mutant = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mutant)
    overrides = {
        name: obj
        for name, obj in vars(mutant).items()
        if inspect.isfunction(obj) and obj.__module__ == mutant.__name__
    }
    if not overrides:
        raise MutantError(f"mutant {path} defines no function")
    if unknown := sorted(name for name in overrides if not hasattr(solution, name)):
        raise MutantError(f"mutant {path} defines {unknown}, which {solution.__name__} does not have")
    merged = types.ModuleType(f"{solution.__name__}+{path.stem}", solution.__doc__)
    merged.__dict__.update({k: v for k, v in vars(solution).items() if not k.startswith("__")})
    merged.__dict__.update(overrides)
    return merged
