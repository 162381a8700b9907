# Task runner. Every target is a thin wrapper around `python -m helpers ...`, which also
# works on Windows and macOS without make (see README.md).
PYTHON ?= python3

.PHONY: setup course test test-quick lab release collect autograde feedback export benchmark

# Interpreter of the course environment for the benchmark scripts (conda: BENCH_PYTHON=python).
BENCH_PYTHON ?= .venv/bin/python

setup:       ## create .venv and install the course
	$(PYTHON) -m helpers setup
course:      ## generate data, execute every answer notebook, print the summary table
	$(PYTHON) -m helpers course
test:        ## run the whole test suite
	$(PYTHON) -m helpers test
test-quick:  ## unit tests only: no notebooks, no training, no nbgrader
	$(PYTHON) -m helpers test --quick
lab:         ## open JupyterLab on notebooks/
	$(PYTHON) -m helpers lab
release:     ## regenerate notebooks/ from answers/ with nbgrader
	$(PYTHON) -m helpers release
collect:     ## collect submissions/<student>/<lesson>/*.ipynb into submitted/
	$(PYTHON) -m helpers collect
autograde:   ## autograde every collected submission
	$(PYTHON) -m helpers autograde
feedback:    ## HTML feedback for every autograded submission
	$(PYTHON) -m helpers feedback
export:      ## export grades to grades.csv
	$(PYTHON) -m helpers export
benchmark:   ## run every benchmark script (tens of minutes; prints ratios measured in the run)
	$(PYTHON) -m helpers setup
	for script in benchmarks/*.py; do echo "== $$script"; $(BENCH_PYTHON) $$script || exit 1; done
