# Two commands do all the set-up on a fresh machine:
#   make repro   create .venv if needed, then `dvc repro` the default pipeline
#   make test    create .venv if needed, then run the whole test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.i2i-installed
# the venv's tools (python, dvc) must win over any other on PATH: dvc.yaml calls `python -m stages`
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: setup repro test test-fast bench ui clean-venv

setup: $(STAMP)

# pip (not uv/poetry) so that the torch builds kept on local disk are used; constraints pin every version
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test]'
	touch $@

repro: setup
	dvc repro

test: setup
	python -m pytest -q

test-fast: setup
	python -m pytest -q -m "not slow"

bench: setup
	python -m stages bench

clean-venv:
	rm -rf $(VENV)
