"""Grading and progress: ``python -m minihybrid grade [--impl solutions] [--exercise ex00] [--json PATH]``
and ``progress("ex00")``.

The exercise files: solutions/exNN_<topic>.py holds the reference answers of exercise exNN (its id is the
file name up to the first underscore); tools/make_exercises.py generates exercises/ from it, each answer
replaced by the stub ``raise NotImplementedError("exNN: implement <function>")`` (``stub_statement``).

``grade`` runs the graded tests of the course repository (tests/graded) in a pytest subprocess, with the
environment variable MINIHYBRID_IMPL choosing what they test: your exercises/ (the default) or the reference
solutions/. It prints the points per exercise and writes a JSON report: per test its id, exercise, points,
outcome, exception and a short message, plus the per-exercise summary and the total. Exit status: 0 when
every graded test passed, 1 when some did not, 2 when the tests could not run.

``progress(exercise)`` reads your exercises/ file without running it and tells, per function, whether you
have written it or it is still the stub.
"""

import argparse
import ast
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GRADED = ROOT / "tests" / "graded"
SOLUTIONS, EXERCISES = ROOT / "solutions", ROOT / "exercises"
GRADE_COMMAND = ".venv/bin/python -m minihybrid grade --exercise {exercise}"
# No .pytest_cache; and nbmake's plugin, which graded tests do not use, takes seconds to import.
PYTEST_PLUGINS_OFF = ("-p", "no:cacheprovider", "-p", "no:nbmake")


def exercise_id(path: str | Path) -> str:
    """The exercise a file implements: its name up to the first underscore (ex00_foundations.py -> ex00)."""
    return Path(path).stem.split("_")[0]


def stub_message(exercise: str, function: str) -> str:
    """The message of the stub's NotImplementedError."""
    return f"{exercise}: implement {function}"


def stub_statement(exercise: str, function: str) -> str:
    """The line tools/make_exercises.py puts in place of ``function``'s answer."""
    return f'raise NotImplementedError("{stub_message(exercise, function)}")'


def exercise_modules(directory: Path = SOLUTIONS) -> dict[str, str]:
    """Exercise id -> module name, for each ex*_*.py file in ``directory``, in id order."""
    if not Path(directory).is_dir():
        raise FileNotFoundError(f"no exercise folder at {directory}")
    modules: dict[str, str] = {}
    for path in sorted(Path(directory).glob("ex*_*.py")):
        if (exercise := exercise_id(path)) in modules:
            raise ValueError(f"{directory}: {modules[exercise]}.py and {path.name} both claim {exercise}")
        modules[exercise] = path.stem
    return modules


def exercise_module(exercise: str, directory: Path = SOLUTIONS) -> str:
    """The module name of ``exercise`` in ``directory``; ValueError naming the available ones if none."""
    modules = exercise_modules(directory)
    if exercise not in modules:
        available = ", ".join(modules) or "none"
        raise ValueError(f"unknown exercise {exercise!r}; the exercises in {directory} are: {available}")
    return modules[exercise]


def _functions(path: Path) -> list[tuple[str, ast.FunctionDef]]:
    """(name, node) of each public function and public method ("Class.method") of a file, in file order."""
    found = []
    for node in ast.parse(Path(path).read_text(), filename=str(path)).body:
        if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
            found.append((node.name, node))
        elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            methods = (m for m in node.body if isinstance(m, ast.FunctionDef) and not m.name.startswith("_"))
            found += [(f"{node.name}.{method.name}", method) for method in methods]
    return found


def exercise_functions(path: Path) -> list[str]:
    """The functions of an exercise file: its public functions and methods ("Class.method"), in file order."""
    return [name for name, _ in _functions(path)]


class PytestError(RuntimeError):
    """pytest could not run the graded tests (collection or usage error, crash, timeout, no report)."""

    def __init__(self, message: str, returncode: int | None = None, output: str = ""):
        super().__init__(message)
        self.returncode, self.output = returncode, output


def run_graded(
    impl: str,
    extra_args: tuple[str, ...] = (),
    exercise: str | None = None,
    *,
    env: dict[str, str] | None = None,
    timeout: float | None = None,
) -> list[dict]:
    """Run tests/graded in a pytest subprocess with MINIHYBRID_IMPL=impl (and `env` added to the environment).

    Returns a dict per graded test that ran: id, exercise, points, outcome, exception and message (see
    tests/conftest.py). Raises PytestError when pytest could not run the tests or wrote no report.
    """
    command = [sys.executable, "-m", "pytest", str(GRADED), "-q", "--tb=no", *PYTEST_PLUGINS_OFF, *extra_args]
    if exercise:
        command += ["--grade-exercise", exercise]
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "grade.json"
        try:
            proc = subprocess.run(
                [*command, "--grade-json", str(report)],
                check=False,
                cwd=ROOT,
                env={**os.environ, **(env or {}), "MINIHYBRID_IMPL": impl},
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired as error:
            raise PytestError(f"pytest timed out after {error.timeout:g}s") from error
        output = proc.stdout + proc.stderr
        last = " | ".join([line.strip() for line in output.splitlines() if line.strip()][-3:])
        if proc.returncode not in (0, 1):  # 0: all passed, 1: some failed, others: the tests could not run
            problem = f"exited with status {proc.returncode}"
        elif not report.is_file():  # e.g. a plugin or conftest crash before the session finished
            problem = f"wrote no report (exit status {proc.returncode})"
        else:
            return json.loads(report.read_text())["tests"]
        raise PytestError(f"pytest {problem}: {last}", proc.returncode, output)


def summarize(tests: list[dict]) -> dict[str, dict]:
    """Per exercise (and "total"): points earned and possible, tests passed and run."""
    summary: dict[str, dict] = {}
    for test in tests:
        passed = test["outcome"] == "passed"
        for key in (test["exercise"], "total"):
            row = summary.setdefault(key, {"earned": 0, "possible": 0, "passed": 0, "tests": 0})
            row["earned"] += test["points"] if passed else 0
            row["possible"] += test["points"]
            row["passed"] += passed
            row["tests"] += 1
    return dict(sorted(summary.items(), key=lambda item: item[0] == "total"))


def format_table(summary: dict[str, dict]) -> str:
    lines = [f"{'exercise':<10}{'points':>10}{'tests passed':>16}"]
    for name, row in summary.items():
        points, tests = f"{row['earned']:g}/{row['possible']:g}", f"{row['passed']}/{row['tests']}"
        lines.append(f"{name:<10}{points:>10}{tests:>16}")
    return "\n".join(lines)


WRITTEN, NOT_YET = "written", "not yet"


@dataclass
class Progress:
    """Which functions of an exercise are written: ``print`` it, or show it in Jupyter (markdown)."""

    exercise: str
    path: Path
    status: dict[str, str]  # function -> WRITTEN or NOT_YET, in file order

    @property
    def written(self) -> int:
        return sum(status == WRITTEN for status in self.status.values())

    @property
    def command(self) -> str:
        return GRADE_COMMAND.format(exercise=self.exercise)

    def _title(self) -> str:
        path = self.path.relative_to(ROOT) if self.path.is_relative_to(ROOT) else self.path
        return f"{self.exercise} ({path.as_posix()}): {self.written} of {len(self.status)} written"

    def __str__(self) -> str:
        width = max(map(len, self.status), default=0)
        rows = [f"  {name:<{width}}  {status}" for name, status in self.status.items()]
        return "\n".join([self._title(), *rows, f"Grade it: {self.command}"])

    __repr__ = __str__

    def _repr_markdown_(self) -> str:
        rows = [f"| `{name}` | {status} |" for name, status in self.status.items()]
        table = "\n".join(["| function | status |", "|---|---|", *rows])
        return f"**{self._title()}**\n\n{table}\n\nGrade it: `{self.command}`"


def progress(exercise: str, directory: str | Path = EXERCISES) -> Progress:
    """Per function of ``exercise``'s file in ``directory`` (your exercises/), WRITTEN or NOT_YET.

    The file is parsed, never run: a function that still contains the stub tools/make_exercises.py wrote
    in it is NOT_YET. Raises ValueError for an unknown exercise, SyntaxError if the file does not parse.
    """
    directory = Path(directory)
    path = directory / f"{exercise_module(exercise, directory)}.py"
    status = {}
    for name, node in _functions(path):
        stub = ast.dump(ast.parse(stub_statement(exercise, node.name)).body[0])
        stubbed = any(isinstance(n, ast.Raise) and ast.dump(n) == stub for n in ast.walk(node))
        status[name] = NOT_YET if stubbed else WRITTEN
    return Progress(exercise, path, status)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m minihybrid grade", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--impl",
        choices=["exercises", "solutions"],
        default="exercises",
        help="grade your exercises/ (default) or the reference solutions/",
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=ROOT / ".grade" / "report.json",
        help="where to write the JSON report (default: .grade/report.json in the repository)",
    )
    parser.add_argument("--exercise", help="grade only this exercise, e.g. ex00")
    args = parser.parse_args(argv)
    if not GRADED.is_dir():
        print(
            f"error: no graded tests at {GRADED}. Grading needs the course repository: clone it and run "
            "`pip install -e .` in it (the installed package does not ship the tests).",
            file=sys.stderr,
        )
        return 2

    try:
        tests = run_graded(args.impl, exercise=args.exercise)
    except PytestError as error:
        if error.returncode == 5:
            print(f"error: no graded tests found for exercise {args.exercise!r}", file=sys.stderr)
        else:
            print("\n".join(error.output.splitlines()[-30:]), file=sys.stderr)  # pytest's last words
            print(f"error: the graded tests could not run ({error})", file=sys.stderr)
        return 2

    report = {"impl": args.impl, "tests": tests, "summary": summarize(tests)}
    report_path = args.json.resolve()
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"Grading {args.impl}/ (MINIHYBRID_IMPL={args.impl})\n")
    print(format_table(report["summary"]))
    failing = [test for test in report["tests"] if test["outcome"] != "passed"]
    if failing:
        print("\nNot passed yet:")
        for test in failing:
            name, why = test["id"].split("::")[-1], test["exception"] or test["outcome"]
            print(f"  {name}: {why}: {test['message']}"[:110])
    print(f"\nReport: {report_path}")
    return 1 if failing else 0
