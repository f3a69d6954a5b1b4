# Two commands do all the set-up on a fresh machine with Python >= 3.11:
#   make test   creates .venv, installs the project with its test extras, runs pytest
#   make demo   creates .venv, installs, syncs a simulated week into an embedded PostgreSQL + Parquet
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
export DO_NOT_TRACK := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false

.PHONY: install test demo bench-connector clean

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ required"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

demo: $(STAMP)
	$(BIN)/wfm demo

bench-connector: $(STAMP)
	$(BIN)/python bench/connector_throughput.py

clean:
	rm -rf $(VENV) .data .pytest_cache
