"""Check that the graded tests can tell right from wrong (run by CI).

    python tools/check_grader.py                       # all checks
    python tools/check_grader.py --only mutants,sync   # a subset

Each check prints one line, PASS or FAIL with the reason; the exit status is 1 if any check failed.

    solutions  with MINIHYBRID_IMPL=solutions, every graded test passes
    exercises  with MINIHYBRID_IMPL=exercises (the stubs), every graded test fails, each with its own
               exercise's stub error, NotImplementedError("<exercise>: implement ...") and nothing else:
               no test passes by accident, breaks on its own, or is filed under the wrong exercise; and
               every function stubbed in exercises/ is the first stub some graded test reaches
    mutants    every deliberately wrong tests/mutants/<exercise>/*.py makes at least one graded test fail
    sync       exercises/ is exactly what tools/make_exercises.py generates from solutions/

Graded tests run as ``python -m pytest tests/graded`` subprocesses through minihybrid.grading.run_graded,
which reads their outcomes from the JSON that tests/conftest.py writes with ``--grade-json``.
"""

import argparse
import functools
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from minihybrid import grading
from minihybrid.grading import PytestError

ROOT = Path(__file__).resolve().parents[1]
# One thread per graded run, as the mutants run in parallel and share the cores; none runs past 10 minutes.
run_graded = functools.partial(grading.run_graded, env={"OMP_NUM_THREADS": "1"}, timeout=600)


def describe(tests: list[dict]) -> str:
    """The first few tests on one line, as 'name: outcome (Exception: message)'."""
    shown = []
    for t in tests[:3]:
        why = f" ({t['exception']}: {t['message'][:60]})" if t["exception"] else ""
        shown.append(f"{t['id'].split('::')[-1]}: {t['outcome']}{why}")
    return "; ".join(shown) + (f"; and {len(tests) - 3} more" if len(tests) > 3 else "")


def check_solutions() -> tuple[bool, str]:
    tests = run_graded("solutions")
    failed = [t for t in tests if t["outcome"] != "passed"]
    if not tests or failed:
        return False, f"{len(failed)} of {len(tests)} graded tests do not pass: {describe(failed)}"
    return True, f"all {len(tests)} graded tests pass ({sum(t['points'] for t in tests)} points)"


def is_stub_failure(test: dict) -> bool:
    """Whether ``test`` failed on the NotImplementedError stub that make_exercises.py puts in its exercise."""
    stub_message = test["message"].startswith(grading.stub_message(test["exercise"], ""))
    return test["outcome"] == "failed" and test["exception"] == "NotImplementedError" and stub_message


def stubbed_functions() -> dict[str, str]:
    """Stub message -> "exercise.function", for every function still a stub in exercises/."""
    return {
        grading.stub_message(exercise, name.split(".")[-1]): f"{exercise}.{name}"
        for exercise in grading.exercise_modules(grading.EXERCISES)
        for name, status in grading.progress(exercise).status.items()
        if status == grading.NOT_YET
    }


def check_exercises() -> tuple[bool, str]:
    tests = run_graded("exercises")
    wrong = [t for t in tests if not is_stub_failure(t)]
    if not tests or wrong:
        return False, f"{len(wrong)} of {len(tests)} do not fail on their stub: {describe(wrong)}"
    stubs, reached = stubbed_functions(), {t["message"] for t in tests}
    if untested := sorted(name for message, name in stubs.items() if message not in reached):
        return False, f"no graded test reaches the stub of {untested}"
    return True, (f"all {len(tests)} graded tests fail on their exercise's NotImplementedError stub; "
                  f"they reach all {len(stubs)} stubbed functions")


def mutant_verdict(path: Path) -> str:
    """'caught', 'survived', or 'broken: <why>' (a mutant the adapters refuse to load, or pytest fails on).

    Only the graded tests of the mutant's exercise (its folder's name) run, up to the first failure.
    """
    try:
        tests = run_graded(f"mutant:{path}", ("--maxfail=1",), exercise=path.parent.name)
        failed = [t for t in tests if t["outcome"] != "passed"]
    except PytestError as error:
        return f"broken: {error}"
    if failed and failed[0]["exception"] == "MutantError":
        return f"broken: {failed[0]['message']}"
    return "caught" if failed else "survived"


def check_mutants() -> tuple[bool, str]:
    mutants = sorted(p for p in (ROOT / "tests" / "mutants").rglob("*.py") if "__pycache__" not in p.parts)
    if not mutants:
        return False, "no mutants found in tests/mutants/<exercise>/"
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        verdicts = dict(zip(mutants, pool.map(mutant_verdict, mutants)))
    bad = [f"{p.relative_to(ROOT)} {verdict}" for p, verdict in verdicts.items() if verdict != "caught"]
    if bad:
        return False, f"{len(bad)} of {len(mutants)} mutants not caught: " + "; ".join(bad)
    return True, f"all {len(mutants)} mutants caught"


def check_sync() -> tuple[bool, str]:
    command = [sys.executable, "tools/make_exercises.py", "--check"]
    proc = subprocess.run(command, check=False, cwd=ROOT, capture_output=True, text=True)
    return proc.returncode == 0, " ".join((proc.stdout + proc.stderr).split())


CHECKS = {
    "solutions": check_solutions,
    "exercises": check_exercises,
    "mutants": check_mutants,
    "sync": check_sync,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(CHECKS), help=f"comma-separated subset of {list(CHECKS)}")
    names = parser.parse_args(argv).only.split(",")
    if unknown := [name for name in names if name not in CHECKS]:
        parser.error(f"unknown check(s) {unknown}; choose from {list(CHECKS)}")
    start, all_ok = time.perf_counter(), True
    for name in names:
        try:
            ok, detail = CHECKS[name]()
        except PytestError as error:
            ok, detail = False, str(error)
        all_ok &= ok
        print(f"{'PASS' if ok else 'FAIL'} {name}: {detail}", flush=True)
    print(f"{'all checks passed' if all_ok else 'some checks FAILED'} in {time.perf_counter() - start:.1f}s")
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
