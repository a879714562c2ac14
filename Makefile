# minihybrid — every target installs what it needs into .venv first.
#   make reproduce   reproduce the course's results -> results/REPORT.md   (FAST=1 for a quick smoke run,
#                    ONLY=<name> for one reproduction, keeping the other sections; RETRAIN=1 ignores cached models)
#   make test        the whole test suite (library, kernels, simulator, grader, notebooks)
#   make lab         JupyterLab on the course notebooks
#   make exercises   regenerate exercises/ from solutions/
#   make grade       points per exercise for your answers in exercises/
#   make workshop    pre-build what a room needs offline, then run doctor: the downloads and every checkpoint
#                    the notebooks reuse, fast mode (MINIHYBRID_FAST=1, ~1 min on 2 cores) then full mode (the
#                    notebooks' default, ~1.5 h on 2 cores; interrupted, it resumes); FAST=1: fast mode only

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup test reproduce lab exercises grade workshop clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -e ".[dev]"
	touch $(STAMP)

test: setup
	bash tools/run_tests.sh

reproduce: setup
	$(PY) -m minihybrid reproduce $(if $(FAST),--fast,) $(if $(ONLY),--only $(ONLY),) $(if $(RETRAIN),--retrain,)

lab: setup
	$(VENV)/bin/jupyter lab notebooks $(if $(filter 0,$(shell id -u)),--allow-root,)

exercises: setup
	$(PY) tools/make_exercises.py

grade: setup
	$(PY) -m minihybrid grade

workshop: setup
	$(PY) -m minihybrid workshop --checkpoints $(if $(FAST),fast,both)

clean:
	rm -rf $(VENV) .grade .pytest_cache
