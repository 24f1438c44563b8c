# fraud_assets — the README's quick start is `make run` and `make test`; everything else is optional.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
UV := $(shell command -v uv 2>/dev/null || echo "$(PYTHON) -m uv")
export FRAUD_DATA_DIR ?= $(CURDIR)/data
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
HOST ?= 127.0.0.1
PORT ?= 3000
# Demo world seeded by `make run` when the landing zone is empty (realistic profile, with mess): 45 days
# ending yesterday (UTC), so the platform is live: the next day is due tomorrow and freshness means something.
DEMO_DAYS ?= 45
# Empty when DEMO_DAYS is not a number of days: `seed` says so in one line.
DEMO_START ?= $(shell $(PYTHON) -c 'import datetime as d, sys; print(d.datetime.now(d.timezone.utc).date() - d.timedelta(days=int(sys.argv[1])))' '$(DEMO_DAYS)' 2>/dev/null)
DEMO_ARGS ?= --profile realistic --start $(DEMO_START) --days $(DEMO_DAYS) --customers 1000 --terminals 2000
RUN := $(UV) run --frozen scripts/with-env
# Test modules run on this many workers (pytest-xdist): the end-to-end modules mostly wait on processes.
# --no-loadscope-reorder keeps conftest's order (longest modules first); xdist's default reorders modules
# by their number of tests, which started the end-to-end module, few tests but minutes long, last.
TEST_WORKERS ?= 2

.PHONY: help setup run test test-deploy lint check-defs pipeline score bench docs seed clean reproduce model-validation

help:
	@echo "make run    - set up, seed demo data, start Dagster (webserver + daemon) on $(HOST):$(PORT)"
	@echo "make test   - set up, lint, validate definitions, run the whole test suite"
	@echo "make test-deploy - only the deployment tests: Postgres instance, deploy/compose.yaml's services apart"
	@echo "make pipeline / score / bench / docs / seed / clean - see README.md"
	@echo "make reproduce MODEL=<version> - rebuild a registered model, report whether it matches"

setup:
	@command -v uv >/dev/null 2>&1 || $(PYTHON) -m uv --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet uv
	@# Bytecode compiled once here: every Dagster process (run worker, code server, CLI) then starts in
	@# ~4 s instead of ~13 s, also where PYTHONDONTWRITEBYTECODE keeps Python from caching it itself.
	@$(UV) sync --frozen --quiet --compile-bytecode
	@$(UV) run --frozen python -m compileall -q fraud_assets
	@$(RUN) true

seed: setup
	@if [ -z "$$(ls -A "$(FRAUD_DATA_DIR)/landing" 2>/dev/null)" ]; then \
		case "$(DEMO_DAYS)" in ''|*[!0-9]*|0) \
			echo "make seed: DEMO_DAYS=$(DEMO_DAYS) is not a number of days (1 or more)" >&2; exit 2;; esac; \
		echo "Seeding the landing zone in $(FRAUD_DATA_DIR) ($(DEMO_ARGS))"; \
		$(RUN) python -m fraud_assets.simulator $(DEMO_ARGS); \
	else echo "Landing zone $(FRAUD_DATA_DIR)/landing already has data: not seeding"; fi

run: seed
	@echo "Starting fraud_assets on http://$(HOST):$(PORT) (DAGSTER_HOME=$(DAGSTER_HOME), FRAUD_DATA_DIR=$(FRAUD_DATA_DIR))"
	@# exec: make's SIGTERM then reaches the launcher (through uv and with-env, which pass it on), which holds
	@# $(DAGSTER_HOME)/.run.lock (one platform per instance), passes Ctrl-C / kill on to every dg dev process
	@# and returns only once none is left (fraud_assets/cli/serve.py).
	@mkdir -p "$(DAGSTER_HOME)"
	@exec $(RUN) python -m fraud_assets.cli.serve --host $(HOST) --port $(PORT) --workspace workspace.yaml

lint: setup
	@$(UV) run --frozen ruff check fraud_assets fraud_assets_tests bench scripts
	@$(UV) run --frozen ruff format --check fraud_assets fraud_assets_tests bench scripts

check-defs: setup
	@$(RUN) dg check defs

test: lint check-defs
	@$(RUN) pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS)

# Starts its own PostgreSQL server from the machine's binaries (fraud_assets_tests/postgres.py).
test-deploy: setup
	@$(RUN) pytest fraud_assets_tests/test_instance_storage.py fraud_assets_tests/test_deployment_files.py \
		fraud_assets_tests/test_e2e_daemon.py $(PYTEST_ARGS)

pipeline: setup
	@$(RUN) python -m fraud_assets.cli.pipeline

score: setup
	@$(RUN) python -m fraud_assets.cli.pipeline --scoring-only

# Rebuild a registered model from its data snapshot, code version, parameters and seed (docs/governance.md).
reproduce: setup
	@if [ -z "$(MODEL)" ]; then echo "usage: make reproduce MODEL=<model_version>"; exit 2; fi
	@$(RUN) python -m fraud_assets.cli.reproduce "$(MODEL)"

# The model validation suite alone (make test runs it too).
model-validation: setup
	@$(RUN) pytest -m model_validation $(PYTEST_ARGS)

# The bench simulates its own worlds from the simulator's default first day, whatever ./data holds.
bench: setup
	@FRAUD_FIRST_BUSINESS_DATE=2018-04-01 $(RUN) python -m bench $(BENCH_ARGS)

docs: setup
	@$(RUN) python -m fraud_assets.cli.catalog --write

clean:
	rm -rf .dagster_home data bench_results .pytest_cache
