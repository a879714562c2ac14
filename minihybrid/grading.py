"""Grade the exercises: ``python -m minihybrid grade [--impl solutions] [--exercise ex00] [--json PATH]``.

Runs the graded tests of the course repository (tests/graded) in a pytest subprocess, with the environment
variable MINIHYBRID_IMPL choosing what they test: your exercises/ (the default) or the reference solutions/.
Prints the points per exercise and writes a JSON report: per test its id, exercise, points, outcome,
exception and a short message, plus the per-exercise summary and the total.

Exit status: 0 when every graded test passed, 1 when some did not, 2 when the tests could not run.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GRADED = ROOT / "tests" / "graded"
# No .pytest_cache; and nbmake's plugin, which graded tests do not use, takes seconds to import.
PYTEST_PLUGINS_OFF = ("-p", "no:cacheprovider", "-p", "no:nbmake")


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
