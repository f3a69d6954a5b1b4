# Two commands do all the set-up on a fresh machine with Python >= 3.11 and pip:
#   make test   creates .venv, installs the project with its test extras from uv.lock, runs pytest
#   make demo   creates .venv, installs from uv.lock, syncs a simulated week into an embedded PostgreSQL + Parquet
# The install is locked: pip only bootstraps uv (the version uv.lock pins, so `uv sync` keeps it),
# then `uv sync --locked` installs exactly uv.lock and refuses a lock that pyproject.toml outgrew.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
UV_VERSION := 0.13.9
UV     := $(BIN)/uv
SYNC   := $(UV) sync --quiet --locked
export DO_NOT_TRACK := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export UV_PYTHON_DOWNLOADS := never

BENCH_STAMP := $(VENV)/.bench-stamp
REPS ?= 3

.PHONY: install lint test demo chaos bench bench-quick bench-connector bench-online clean

$(STAMP): pyproject.toml uv.lock
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ required"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	test -x $(UV) || $(BIN)/python -m pip install --quiet "uv==$(UV_VERSION)"
	$(SYNC) --extra test
	touch $(STAMP)

install: $(STAMP)

# ruff (pyflakes, pycodestyle, import order, bugbear) on the tree; mypy on connectors, engine, tasks, receiver
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest -q

demo: $(STAMP)
	$(BIN)/wfm demo

# the chaos suite with larger counts (tests/chaos); the same scenarios run small in `make test`
chaos: $(STAMP)
	$(BIN)/python -m tests.chaos $(CHAOS_ARGS)

# issue 9: wfm vs the floor vs dlt in one run (bench/run.py); `make bench REPS=1` for a shorter run
$(BENCH_STAMP): $(STAMP)
	$(SYNC) --extra test --extra bench
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BIN)/python bench/run.py --reps $(REPS)

bench-quick: $(STAMP)
	$(BIN)/python bench/run.py --quick

bench-connector: $(STAMP)
	$(BIN)/python bench/connector_throughput.py

# issue 15: a time-compressed day of online snapshots at 1,000 agents; last run <= 1.5x the first
# (every 10th minute timed by default; ONLINE_ARGS="--every 1" all 1,440, "--layout rebuild --every 30" the old layout)
bench-online: $(STAMP)
	$(BIN)/python bench/online_day.py $(ONLINE_ARGS)

clean:
	rm -rf $(VENV) .data .pytest_cache

# Deployments (docs/scale-out.md). One machine: `wfm serve`. A fleet: `make server` on one host,
# `make deploy` once, `make worker` on each worker host (PREFECT_API pointing at the server).
PREFECT_HOST ?= 127.0.0.1
PREFECT_PORT ?= 4200
PREFECT_DB   ?= postgresql://postgres@127.0.0.1:5432/prefect
PREFECT_API  ?= http://$(PREFECT_HOST):$(PREFECT_PORT)/api
WORK_POOL    := wfm-process

.PHONY: server deploy worker

server: $(STAMP)
	$(BIN)/python -m deployments.server --host $(PREFECT_HOST) --port $(PREFECT_PORT) --database "$(PREFECT_DB)"

deploy: $(STAMP)
	PREFECT_API_URL=$(PREFECT_API) $(BIN)/prefect block register -m blocks
	PREFECT_API_URL=$(PREFECT_API) $(BIN)/prefect work-pool create $(WORK_POOL) --type process --overwrite
	cd deployments && PREFECT_API_URL=$(PREFECT_API) $(CURDIR)/$(BIN)/prefect --no-prompt deploy --all

worker: $(STAMP)
	PREFECT_API_URL=$(PREFECT_API) $(BIN)/prefect worker start --pool $(WORK_POOL) --type process
