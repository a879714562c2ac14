"""Shared pytest setup: import paths, and the points of graded tests.

Graded tests carry ``@pytest.mark.graded(exercise="ex00", points=2)``, naming an exercise of solutions/, and
reach the code under test only through tests/adapters.py. Options:

    --grade-json PATH      write each graded test's exercise, points, outcome and exception to PATH (JSON);
                           ``python -m minihybrid grade`` and tools/check_grader.py read it
    --grade-exercise ID    run only the graded tests of exercise ID (e.g. ex00)
"""

import json
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
for _path in (str(ROOT), str(TESTS)):  # solutions, exercises, minihybrid and adapters import uninstalled
    if _path not in sys.path:
        sys.path.insert(0, _path)

RESULTS = pytest.StashKey[dict]()


def pytest_addoption(parser):
    group = parser.getgroup("grading")
    group.addoption("--grade-json", metavar="PATH", help="write graded tests' outcomes and points to PATH")
    group.addoption("--grade-exercise", metavar="ID", help="run only the graded tests of exercise ID")


def pytest_configure(config):
    config.stash[RESULTS] = {}


def pytest_collection_modifyitems(config, items):
    """Check every graded test's marker; with --grade-exercise, deselect all other tests."""
    import adapters  # found through the sys.path entries set above

    only = config.getoption("grade_exercise")
    selected, deselected = [], []
    for item in items:
        marker = item.get_closest_marker("graded")
        if marker is None and TESTS / "graded" in item.path.parents:
            raise pytest.UsageError(f"{item.nodeid}: tests in tests/graded need @pytest.mark.graded(...)")
        if marker is not None:
            exercise, points = marker.kwargs.get("exercise"), marker.kwargs.get("points")
            if not isinstance(exercise, str) or not isinstance(points, (int, float)) or points <= 0:
                raise pytest.UsageError(f"{item.nodeid}: use @pytest.mark.graded(exercise='ex00', points=2)")
            if exercise not in adapters.MODULES:
                known = ", ".join(adapters.MODULES)
                raise pytest.UsageError(f"{item.nodeid}: unknown exercise {exercise!r} (solutions/: {known})")
        keep = only is None or (marker is not None and marker.kwargs["exercise"] == only)
        (selected if keep else deselected).append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = selected


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Record the first failure (or skip) of each graded test, in setup, call or teardown."""
    report = yield
    marker = item.get_closest_marker("graded")
    if marker is None or not item.config.getoption("grade_json"):
        return report
    entry = item.config.stash[RESULTS].setdefault(
        item.nodeid,
        {
            "id": item.nodeid,
            "exercise": marker.kwargs["exercise"],
            "points": marker.kwargs["points"],
            "outcome": "passed",
            "exception": None,
            "message": "",
        },
    )
    if entry["outcome"] == "passed" and report.failed:
        entry["outcome"] = "failed" if report.when == "call" else "error"
        if call.excinfo is not None:
            entry["exception"] = call.excinfo.typename
            entry["message"] = " ".join(str(call.excinfo.value).split())[:200]
    elif entry["outcome"] == "passed" and report.skipped:
        entry["outcome"] = "skipped"
        entry["message"] = report.longrepr[2] if isinstance(report.longrepr, tuple) else ""
    return report


def pytest_sessionfinish(session, exitstatus):
    path = session.config.getoption("grade_json")
    if path:
        import adapters  # found through the sys.path entries set above

        report = {"impl": adapters.implementation(), "tests": list(session.config.stash[RESULTS].values())}
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(report, indent=2) + "\n")
