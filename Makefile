# Tabular XGBoost on SageMaker Pipelines. `make` lists the targets.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# uv (pinned in requirements/tools.in) locks and installs; it lives in the venv's folder, outside
# the locked set it installs.
TOOLS := $(VENV)/.tools
UV := $(TOOLS)/bin/uv
# uv trusts the platform's certificate store, as pip does (a TLS-inspecting proxy's CA lives there),
# also in a shell without SSL_CERT_FILE.
export UV_SYSTEM_CERTS := 1
LOCKS := requirements
# The venv holds one locked set at a time (runtime, dev or bench); its stamp names the set.
STAMP := $(VENV)/.synced-dev
CONFIG ?= configs/pipeline.yaml
LOCAL_CONFIG ?= configs/local.yaml

# One resolution of every extra (bench.txt); dev.txt and runtime.txt are cut from it, so a package
# has the same version in every set. Universal: one file for Linux, macOS and Windows on Python 3.11
# and 3.12, with one version per package across them (fork strategy `fewest`).
COMPILE = $(UV) pip compile --quiet --universal --fork-strategy fewest --python-version 3.11 \
	--generate-hashes --custom-compile-command "make lock"

$(UV): $(LOCKS)/tools.txt
	rm -rf $(TOOLS)
	$(PYTHON) -m pip install -qq --root-user-action=ignore --require-hashes --no-deps \
		--target $(TOOLS) -r $<
	@touch $@

# Sync the venv to one lock exactly: what older installs left goes, the locked versions win, and
# the project itself is installed editable, built by the locked setuptools. Bytecode is compiled
# at install (--compile-bytecode), so no job process compiles pandas or scikit-learn again, also
# where PYTHONDONTWRITEBYTECODE is set or the venv is read-only. uv checks every hash
# the lock holds (tests/unit/pipelines/test_lockfiles.py: every pin has them); nothing is resolved here.
$(VENV)/.synced-%: $(LOCKS)/%.txt $(LOCKS)/build.txt pyproject.toml | $(UV)
	@test -x $(BIN)/python || $(UV) venv --quiet --allow-existing --python $(PYTHON) $(VENV)
	@rm -f $(VENV)/.synced-*
	$(UV) pip sync --quiet --compile-bytecode --python $(BIN)/python \
		--build-constraints $(LOCKS)/build.txt --require-build-hashes $< <(echo "--editable .")
	@$(UV) pip check --quiet --python $(BIN)/python || { \
		echo "$< does not hold what pyproject.toml requires: run \`make lock\`" >&2; exit 1; }
	@touch $@

## install: sync .venv to the lock: the package and its test tools (other targets sync on change)
install:
	@rm -f $(STAMP)
	@$(MAKE) --no-print-directory $(STAMP)

## lock: regenerate requirements/*.txt from pyproject.toml (locked versions kept where allowed)
lock: | $(UV)
	$(COMPILE) $(LOCK_ARGS) pyproject.toml --extra dev --extra bench -o $(LOCKS)/bench.txt
	$(COMPILE) pyproject.toml --extra dev -c $(LOCKS)/bench.txt -o $(LOCKS)/dev.txt
	$(COMPILE) pyproject.toml -c $(LOCKS)/bench.txt -o $(LOCKS)/runtime.txt
	$(COMPILE) $(LOCK_ARGS) $(LOCKS)/build.in -o $(LOCKS)/build.txt
	$(COMPILE) $(LOCKS)/tools.in -o $(LOCKS)/tools.txt

## upgrade: newest allowed versions: relock, reinstall, rebuild the golden file, report the diff
upgrade: | $(UV)
	MAKE="$(MAKE)" $(PYTHON) -m tools.upgrade

SOURCES := pipelines steps config scripts runtime bench tools tests

# The job code as its container sees it: scripts/ is the code folder, each script a top-level
# module beside the job package's (tabular, evaluation).
JOB_SCRIPTS := $(patsubst scripts/%.py,-m %,$(filter-out scripts/__init__.py,$(wildcard scripts/*.py)))

## lint: ruff, mypy on the builders and the job code, and the import contracts (job code stays SDK-free)
lint: $(STAMP)
	$(BIN)/ruff check $(SOURCES)
	$(BIN)/ruff format --check $(SOURCES)
	$(BIN)/mypy pipelines steps config runtime tools
	$(BIN)/mypy -p tabular -p evaluation $(JOB_SCRIPTS)
	$(BIN)/lint-imports

## format: sort imports, apply ruff's safe fixes and format every source file
format: $(STAMP)
	$(BIN)/ruff check --fix-only --quiet $(SOURCES)
	$(BIN)/ruff format $(SOURCES)

## test: lint, then every test (no AWS, no network: moto stands in for the API)
test: lint
	$(BIN)/python -m pytest --durations=10

## test-fast: the unit tests (tests/unit) but the few marked slow; `make test` runs them all
test-fast: $(STAMP)
	$(BIN)/python -m pytest tests/unit -m "not slow"

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

## infra-lint: cfn-lint on every template in infra/ (pipeline resources, deploy role, release)
infra-lint: $(STAMP)
	$(BIN)/cfn-lint --include-checks I -- infra/*.yaml

# The deploy targets take STAGE=<a stage of deploy.stages>; VERSION=<n> pins a package version.
# A release (infra/model-deploy.yaml, buildspecs/) passes its record between stages: RECORD=<file>
# writes it or adds a result to it, RELEASE=<file> deploys the version it names.
STAGED = $(if $(STAGE),--stage $(STAGE),$(error STAGE is required, e.g. make $@ STAGE=staging))
RECORDED = $(if $(RECORD),--record $(RECORD))

## deploy: deploy the latest approved package to STAGE (VERSION=n pins one, RELEASE=file the one a release record names, RECORD=file writes one, DRY_RUN=1 plans only)
deploy: $(STAMP)
	$(BIN)/python -m pipelines deploy --config $(CONFIG) $(STAGED) \
		$(if $(VERSION),--version $(VERSION)) $(if $(RELEASE),--release $(RELEASE)) \
		$(RECORDED) $(if $(DRY_RUN),--dry-run)

## rollback: deploy STAGE's previously deployed package again (VERSION=n: that version)
rollback: $(STAMP)
	$(BIN)/python -m pipelines rollback --config $(CONFIG) $(STAGED) \
		$(if $(VERSION),--to-version $(VERSION)) $(if $(DRY_RUN),--dry-run)

## undeploy: remove STAGE's endpoint and everything deploy created for it
undeploy: $(STAMP)
	$(BIN)/python -m pipelines undeploy --config $(CONFIG) $(STAGED)

## status: STAGE's endpoint, live package, alarms, autoscaling, monitoring and history
status: $(STAMP)
	$(BIN)/python -m pipelines status --config $(CONFIG) $(STAGED)

## smoke: invoke STAGE's live endpoint with its package's test rows; exit 1 on a mismatch (RECORD=file adds the result)
smoke: $(STAMP)
	$(BIN)/python -m pipelines smoke --config $(CONFIG) $(STAGED) $(RECORDED)

## load: a bounded load run against STAGE's live endpoint (deploy.stages.<stage>.load_test; RECORD=file adds the result)
load: $(STAMP)
	$(BIN)/python -m pipelines load --config $(CONFIG) $(STAGED) $(RECORDED)

## approval-message: the manual gate's message from RECORD=file (NEXT_STAGE, default prod); APPROVAL_TOPIC_ARN=arn sends it
approval-message: $(STAMP)
	$(BIN)/python -m pipelines approval-message --config $(CONFIG) \
		--record $(or $(RECORD),$(error RECORD is required: the release record of the staging deploy)) \
		--next-stage $(or $(NEXT_STAGE),prod) $(if $(APPROVAL_TOPIC_ARN),--topic $(APPROVAL_TOPIC_ARN))

## rollback-rejected: roll every stage serving REJECTED_PACKAGE_ARN back to the latest approved package
rollback-rejected: $(STAMP)
	$(BIN)/python -m pipelines rollback-rejected --config $(CONFIG) \
		--package-arn $(or $(REJECTED_PACKAGE_ARN),$(error REJECTED_PACKAGE_ARN is required)) \
		$(if $(DRY_RUN),--dry-run)

## serve-local: serve the latest approved local package on http://127.0.0.1:8080 (VERSION=n, PORT=p)
serve-local: $(STAMP)
	$(BIN)/python -m pipelines serve --local --config $(LOCAL_CONFIG) \
		$(if $(VERSION),--version $(VERSION)) $(if $(PORT),--port $(PORT))

## deploy-golden: regenerate tests/golden/deploy/ (the reference deployments' requests, offline)
deploy-golden: $(STAMP)
	$(BIN)/python -m pipelines deploy-golden

## bench: overhead, caching, build time, scale, AUC, a load run on the local model server (ONLY=serving: that alone)
bench: $(VENV)/.synced-bench
	$(if $(filter serving,$(ONLY)),,$(BIN)/python -m bench.run $(BENCH_ARGS))
	$(BIN)/python -m bench.serving

## bench-report: what the evaluation report adds to Evaluate at 100k and 1M test rows
bench-report: $(VENV)/.synced-bench
	$(BIN)/python -m bench.report_cost $(BENCH_ARGS)

## clean: remove build outputs (keeps .venv)
clean:
	rm -rf build

## help: list the targets
help:
	@grep -E '^## ' $(MAKEFILE_LIST) | sed -e 's/^## /  /' -e 's/: /\t/' | expand -t 14

.PHONY: install lock upgrade lint test validate definition golden upsert run-local clean help schedule unschedule infra-lint bench bench-report deploy rollback undeploy status smoke deploy-golden load approval-message rollback-rejected serve-local
