#!/usr/bin/env bash
# The whole test suite, step by step; the first failing step stops the run and says which it was.
# The main pytest run comes last so that its summary line closes the output.
set -u
cd "$(dirname "$0")/.."
PY=.venv/bin/python
export MINIHYBRID_FAST=1 MINIHYBRID_REQUIRE_DOWNLOADS=1 PYTHONUNBUFFERED=1

step() {
  local name=$1; shift
  echo "=== $name"
  if ! "$@"; then
    echo "FAILED step: $name ($*)"
    exit 1
  fi
}

step "lint (ruff)" $PY -m ruff check .
step "grader: exercises in sync, solutions pass, exercises fail with NotImplementedError, mutants caught" \
  $PY tools/check_grader.py
step "numba.cuda kernels under the simulator (own process)" \
  env NUMBA_ENABLE_CUDASIM=1 $PY -m pytest -q -p no:cacheprovider -m cudasim tests/kernels
if $PY -c "import sys, torch; sys.exit(not torch.cuda.is_available())"; then
  step "numba.cuda kernels on the real GPU" $PY -m pytest -q -p no:cacheprovider -m cudasim tests/kernels
fi
# tests/test_browser.py runs every notebook in JupyterLab in Chromium when Chromium and playwright are here
# (minihybrid.doctor finds the browser); nbmake runs them otherwise, never both.
nbmake="--nbmake notebooks"
if $PY -c "import sys, playwright.sync_api; from minihybrid.doctor import chromium_path
sys.exit(chromium_path() is None)" 2>/dev/null; then
  nbmake=""
fi
step "library, kernels, data, pretrained oracle, notebooks (fast mode)" \
  $PY -m pytest -q -p no:cacheprovider -m "not cudasim" --ignore=tests/graded $nbmake tests
