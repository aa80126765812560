# delivery-eta: every target installs what it needs; a fresh machine needs only python3 + make.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON_BOOT ?= python3
UV_VERSION  ?= 0.13.8
TOOLS       := .tools
UV          := $(TOOLS)/bin/uv
VENV        := .venv
PY          := $(VENV)/bin/python
BENTOML     := $(VENV)/bin/bentoml
PORT        ?= 3000
HOST        ?= 127.0.0.1
# The model store lives outside the repo so `bentoml build` never packs it into itself.
export BENTOML_HOME ?= $(HOME)/bentoml
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: help env system-deps contract train retrain serve test test-soak cluster-test lint format materialize export-labels compare load-check canary k8s-rules promote rollback models lock clean

help: ## list targets
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

$(UV):
	$(PYTHON_BOOT) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet "uv==$(UV_VERSION)"

# Bytecode is written here, once: with PYTHONDONTWRITEBYTECODE set (as on these machines) Python
# never caches it, and every server, worker and training process would compile bentoml, pandas
# and scikit-learn again (an import of the service: 9 s of CPU without, 3.5 s with).
$(VENV)/.synced: $(UV) pyproject.toml uv.lock
	$(UV) sync --locked --quiet --compile-bytecode
	@touch $@

PROJECT_CODE := service.py train.py framework_internals models serving prediction_log operations loadtest tests

env: $(VENV)/.synced ## create .venv from uv.lock (and the project's bytecode, see above)
	@$(PY) -m compileall -q -j0 $(PROJECT_CODE)

# Debian packages the tests and load checks run for real: redis-server (feature store and
# prediction log), wrk (load generator), prometheus + promtool (rule tests, scrape test),
# chromium (the docs page in a real headless browser), haproxy (the balancer of cluster-test).
system-deps:
	@missing=""; for bin in redis-server wrk prometheus promtool chromium haproxy; do command -v $$bin >/dev/null || missing="$$missing $$bin"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages for:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq redis-server wrk prometheus chromium haproxy >/dev/null; \
	fi

DATA   ?=
LABELS ?=
CONTRACT ?=
TRAIN_ARGS ?=
# Drafts a contract (docs/contract.md) from an order history; review it, then train with it.
CONTRACT_ARGS ?=
contract: env ## draft a feature contract from DATA=orders.csv|.parquet|dir (OUT=contract.yaml)
	@test -n "$(DATA)" || { echo "usage: make contract DATA=orders.csv [OUT=contract.yaml] [CONTRACT_ARGS='--target COL --timestamp COL --force']" >&2; exit 2; }
	$(PY) -m models.contract draft $(DATA) --out $(or $(OUT),contract.yaml) $(CONTRACT_ARGS)

train: env ## train and register a candidate: synthetic data, or DATA=orders.csv|.parquet|dir [CONTRACT=contract.yaml]
	$(PY) train.py $(if $(DATA),--data $(DATA)) $(if $(LABELS),--labels $(LABELS)) $(if $(CONTRACT),--contract $(CONTRACT)) $(TRAIN_ARGS)

# Closing the loop: the service's labelled predictions + the order history -> a candidate whose
# holdout is the newest labelled orders, then the promotion gate against production.
retrain: env ## DATA=history [LABELS=out.parquet] [CONTRACT=contract.yaml]: export labels, train on both, gate vs production
	@test -n "$(DATA)" || { echo "usage: make retrain DATA=orders.parquet [LABELS=labels.parquet] [CONTRACT=contract.yaml]" >&2; exit 2; }
	@mkdir -p $(dir $(or $(LABELS),reports/labels.parquet))
	$(PY) -m operations.export_labels --out $(or $(LABELS),reports/labels.parquet) $(if $(CONTRACT),--contract $(CONTRACT))
	$(PY) train.py --data $(DATA) --labels $(or $(LABELS),reports/labels.parquet) $(if $(CONTRACT),--contract $(CONTRACT)) $(TRAIN_ARGS)
	$(PY) -m operations.promotion promote

serve: env ## train if the store has no model, then serve on http://$(HOST):$(PORT)
	$(PY) train.py --if-missing
	$(BENTOML) serve service:DeliveryETA --host $(HOST) --port $(PORT)

# The suite on TEST_WORKERS xdist workers: one unit per test file (the timing-sensitive files as
# one unit), the slowest first (tests/conftest.py). 3 on a 2-core machine: much of a server
# test is waiting (start-up, readiness, sleeps), so a third worker fills the gaps.
TEST_WORKERS ?= 3
test: env system-deps ## run the suite (unit, model, service, contract) but the soak runs, on TEST_WORKERS=3 workers
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile -m "not soak and not cluster"

test-soak: env system-deps ## the long measurement and soak runs (marker soak), one after another
	$(PY) -m pytest -q -m soak

# Many replicas, one truth (docs/deploy.md "Many replicas"): 3 replicas as `make serve` runs them
# behind HAProxy, one Redis, Prometheus with the project's rules; faults under load. Then the same
# with the replicas as the container image, when a Docker engine runs or can be started here
# (deploy/docker/engine.sh; it packs the tests' models into an image of its own). ~5 min for both.
# Also the SQLite log on a full filesystem (one server: that log belongs to one pod).
# CLUSTER_RUNTIMES="process" (or "image") runs one.
CLUSTER_RUNTIMES ?=
cluster-test: env system-deps ## 3 replicas (processes, then the image) + Redis + HAProxy + Prometheus: faults under load, rules, panels
	@runtimes="$(CLUSTER_RUNTIMES)"; \
	if [ -z "$$runtimes" ]; then \
	  if deploy/docker/engine.sh; then runtimes="process image"; \
	  else runtimes="process"; echo "cluster-test: no Docker engine here: the replicas run as processes only"; fi; \
	fi; \
	echo "cluster-test: replicas as: $$runtimes"; \
	CLUSTER_RUNTIMES="$$runtimes" $(PY) -m pytest -q -m cluster tests/cluster tests/reliability/test_full_disk.py

lint: env ## ruff lint + format check, mypy on the core
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: env ## apply ruff formatting and safe fixes
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

REDIS_URL ?= redis://127.0.0.1:6379/0
materialize: env ## load the served model's entity features into Redis (REDIS_URL=...)
	$(PY) train.py materialize --redis-url $(REDIS_URL)

# Reads the log the service's DELIVERY_ETA_PREDICTION_LOG_* settings name (docs/prediction-log.md).
OUT ?=
export-labels: env ## predictions with feedback -> Parquet in the training schema (OUT=file [SINCE=hours])
	@if [ -z "$(OUT)" ]; then echo "export-labels: set OUT=<file.parquet>, e.g. make export-labels OUT=labels.parquet" >&2; exit 2; fi
	$(PY) -m operations.export_labels --out "$(OUT)" $(if $(SINCE),--since $(SINCE)) $(if $(CONTRACT),--contract $(CONTRACT))

# Champion vs challenger (DELIVERY_ETA_SHADOW_MODEL_TAG) on the requests both scored, from the
# same log; read-only, safe while the service writes (docs/prediction-log.md).
HOURS ?= 24
compare: env ## champion vs challenger on live traffic from the prediction log (HOURS=24 [JSON=1])
	$(PY) -m operations.compare_live --hours $(HOURS) $(if $(JSON),--json)

load-check: env system-deps ## 64 connections x 15 s of single predictions: 0 non-2xx, batches > 1
	$(PY) train.py --if-missing
	$(PY) -m loadtest.batching_check --connections 64 --duration 15

promote: env ## gate the newest candidate (or TAG=...) against production [MIN_SHADOW_ROWS=N [SHADOW_HOURS=H]] [ALLOW_API_BREAK=1]
	$(PY) -m operations.promotion promote $(if $(TAG),--tag $(TAG)) $(if $(MIN_SHADOW_ROWS),--min-shadow-rows $(MIN_SHADOW_ROWS)) $(if $(SHADOW_HOURS),--shadow-hours $(SHADOW_HOURS)) $(if $(ALLOW_API_BREAK),--allow-api-break)

rollback: env ## make the previous production model production again
	$(PY) -m operations.promotion rollback

models: env ## list model versions and their stages
	$(PY) -m operations.promotion status

URL ?= http://127.0.0.1:$(PORT)
canary: env ## golden requests against a deployed service (URL=... [GOLDEN=file]); non-zero on any regression
	$(PY) deploy/canary/canary.py --url $(URL) $(if $(GOLDEN),--golden $(GOLDEN))

lock: $(UV) ## re-resolve uv.lock after editing pyproject.toml
	$(UV) lock

k8s-rules: env ## regenerate the k8s PrometheusRule from deploy/monitoring/rules
	$(PY) deploy/monitoring/render_prometheusrule.py > deploy/k8s/base/shared/prometheusrule.yaml

clean: ## remove environments and caches (not the model store)
	rm -rf $(VENV) $(TOOLS) .pytest_cache .mypy_cache .ruff_cache reports

# Packaging and deployment: bento, image, container test, Kubernetes, Compose.
include deploy/deploy.mk
# Load test with SLO verdict, and the side-by-side benchmark.
include loadtest/loadtest.mk
