# Tabular XGBoost on SageMaker Pipelines. `make` lists the targets.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CONFIG ?= configs/pipeline.yaml
LOCAL_CONFIG ?= configs/local.yaml

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

## install: create .venv and install the package with its test tools
install: $(STAMP)

## lint: ruff, mypy on the builders, and the import contracts (job code stays SDK-free)
lint: $(STAMP)
	$(BIN)/ruff check pipelines steps scripts runtime tests conftest.py
	$(BIN)/ruff format --check pipelines steps scripts runtime tests conftest.py
	$(BIN)/mypy pipelines steps runtime
	$(BIN)/lint-imports

## test: lint, then every test (no AWS, no network: moto stands in for the API)
test: lint
	$(BIN)/python -m pytest

## validate: check a config file (CONFIG=...) and show what it resolves to
validate: $(STAMP)
	$(BIN)/python -m pipelines validate --config $(CONFIG)

## definition: write build/pipeline.json, the exact document `make upsert` publishes (offline)
definition: $(STAMP)
	$(BIN)/python -m pipelines definition --config $(CONFIG)

## golden: regenerate tests/golden/pipeline.json, the reviewed snapshot of the definition
golden: $(STAMP)
	$(BIN)/python -m pipelines golden

## upsert: upload the code, ensure the model package group, create or update the pipeline
upsert: $(STAMP)
	$(BIN)/python -m pipelines upsert --config $(CONFIG)

## run-local: run the whole graph on this machine (no Docker, no AWS) on the built-in data
run-local: $(STAMP)
	$(BIN)/python -m pipelines run-local --config $(LOCAL_CONFIG)

## schedule: create or update the retraining schedule (EventBridge Scheduler) from `schedule:`
schedule: $(STAMP)
	$(BIN)/python -m pipelines schedule --config $(CONFIG)

## unschedule: remove the retraining schedule
unschedule: $(STAMP)
	$(BIN)/python -m pipelines unschedule --config $(CONFIG)

## infra-lint: cfn-lint on infra/template.yaml (bucket, roles, queues, model package group)
infra-lint: $(STAMP)
	$(BIN)/cfn-lint --include-checks I -- infra/template.yaml

## bench: measure overhead, caching, build time, scale, AUC (build/bench/results.json, .png)
bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[bench]"
	$(BIN)/python -m bench.run $(BENCH_ARGS)

## clean: remove build outputs (keeps .venv)
clean:
	rm -rf build

## help: list the targets
help:
	@grep -E '^## ' $(MAKEFILE_LIST) | sed -e 's/^## /  /' -e 's/: /\t/' | expand -t 14

.PHONY: install lint test validate definition golden upsert run-local clean help schedule unschedule infra-lint bench
