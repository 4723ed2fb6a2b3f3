# Two commands do all the set-up on a fresh machine:
#   make repro   create .venv if needed, then `dvc repro` the default pipeline
#   make test    create .venv if needed, then run the whole test suite
# To look at the records: make ui (MLflow), make plots (dvc plots, offline), make exps (dvc exp show)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.i2i-installed
# the venv's tools (python, dvc) must win over any other on PATH: dvc.yaml calls `python -m stages`
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: setup repro test test-fast bench ui plots exps daynight clean-venv

setup: $(STAMP)

# pip (not uv/poetry) so that the torch builds kept on local disk are used; constraints pin every version
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-compile -c constraints.txt -e '.[test]'
	@# byte code on every core (pip compiles one file at a time): the same .pyc files in a third of the
	@# time; the few files written for newer Pythons do not compile, and pip's own step skips them too
	$(BIN)/python -m compileall -q -j 0 $(VENV)/lib > /dev/null || true
	touch $@

repro: setup
	dvc repro

test: setup
	python -m pytest -q

test-fast: setup
	python -m pytest -q -m "not slow"

bench: setup
	python -m stages bench

# the MLflow UI over mlflow.db; prints the link to the experiment's runs table
ui: setup
	python -m stages ui

# dvc plots show, drawn offline: the page template (Vega inlined) comes from the plots_template stage
plots: setup
	dvc repro plots_template
	dvc plots show

# how the experiments differ: only the params and scores that changed, without the dependencies'
# hashes (the columns named by a path alone); SORT=<metrics file>:<score> sorts, best first, e.g.
# make exps SORT=reports/metrics/cyclegan.json:pixel_acc
SORT ?=
exps: setup
	dvc exp show --no-pager --only-changed --hide-queued --drop '^[^:]*/[^:]*$$' \
		$(if $(SORT),--sort-by $(SORT) --sort-order desc)

# the unpaired day -> night task as one DVC experiment (README "Day -> night (unpaired)")
daynight: setup
	dvc exp run -S data.styles=day_night -S ++curate.domain_a.Night=-1 -S ++curate.domain_b.Night=1 \
		-S lambda_idt=0.5 -S cut.enabled=true -S fastcut.enabled=true

clean-venv:
	rm -rf $(VENV)
