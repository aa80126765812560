# Packaging and deployment targets for delivery-eta. Included from the main Makefile
# (`include deploy/deploy.mk`); every path is relative to the repository root.
#
#   make docker-engine   install (Debian docker.io) and start dockerd if none answers
#   make base-image      build the Debian bookworm + Python 3.11 base (debootstrap)
#   make requirements    export deploy/requirements.txt (exact pins, server only) from uv.lock
#   make bento           bentoml build (trains a model first if the store has none)
#   make image           bentoml containerize -> $(IMAGE_NAME):$(IMAGE_TAG)
#   make test-container  run the image, time start->ready, predict, stop, print size
#   make compose-up / compose-down   image + Redis + Prometheus, host networking
#   make compose-test    smoke test: the compose stack's predictions read Redis
#   make image-name      print the image tag that `make image` builds
#   make k8s-render OVERLAY=production   print a rendered overlay
#   make deploy-test     the offline manifest tests (tests/deploy) only
#
# Air-gapped by default (no Docker Hub): BASE_IMAGE is the local debootstrap image.
# With Docker Hub: make image BASE_IMAGE=python:3.11-slim

PY        ?= .venv/bin/python
BENTOML   ?= .venv/bin/bentoml
UV        ?= .tools/bin/uv
DOCKER    ?= docker

LOCAL_BASE_IMAGE ?= delivery-eta-base:bookworm-py311
BASE_IMAGE       ?= $(LOCAL_BASE_IMAGE)

# Version = pyproject version + commit, so every build of a commit gets its own
# immutable tag (and never `latest`). `-dirty` marks a build of uncommitted files.
APP_VERSION  := $(shell sed -n 's/^version *= *"\(.*\)"/\1/p' pyproject.toml | head -n1)
GIT_REV      := $(shell git describe --always --dirty --abbrev=8 2>/dev/null || echo nogit)
BENTO_NAME   ?= delivery_eta
BENTO_VERSION ?= $(APP_VERSION)-$(GIT_REV)
IMAGE_NAME   ?= delivery-eta
IMAGE_TAG    ?= $(BENTO_VERSION)
IMAGE        := $(IMAGE_NAME):$(IMAGE_TAG)
# Pin the model packed into the bento; empty = the one the service would serve, i.e. the
# stage=production model (or the newest before any promotion), resolved by service.py at build.
MODEL_TAG    ?=
# A challenger for the shadow (docs/shadow.md): packed into the bento beside the served model.
SHADOW_MODEL_TAG ?=
# Seconds `docker stop` waits before SIGKILL; = terminationGracePeriodSeconds in k8s.
STOP_GRACE   ?= 30

# Loopback ports of the compose stack (host networking).
API_PORT   ?= 3000
REDIS_PORT ?= 6379
PROM_PORT  ?= 9090

OVERLAY ?= production

export BENTOML_DO_NOT_TRACK := true

.PHONY: docker-engine base-image requirements bento image image-name test-container \
        compose-up compose-down compose-test k8s-render deploy-test

docker-engine: ## install and start a Docker engine if none is running
	deploy/docker/engine.sh

base-image: docker-engine ## debootstrap Debian bookworm + Python 3.11 into a local base image
	deploy/docker/base-image.sh $(LOCAL_BASE_IMAGE)

# The server's dependencies only: not the dev group, nor the tools group (pyarrow, matplotlib:
# training, the contract draft, the label export), which the server never imports
# (tests/test_service_imports.py). dev includes tools, so both are named.
requirements: $(UV) ## export deploy/requirements.txt (exact pins, no dev or tools group) from uv.lock
	$(UV) export --frozen --no-dev --no-group tools --no-hashes --no-emit-project --quiet \
	  -o deploy/requirements.txt

bento: env requirements ## bentoml build (trains a model first if the store has none)
	$(PY) train.py --if-missing
	@# Rebuilding the same commit replaces its bento rather than failing on the tag.
	@$(BENTOML) delete -y $(BENTO_NAME):$(BENTO_VERSION) >/dev/null 2>&1 || true
	$(if $(MODEL_TAG),DELIVERY_ETA_MODEL_TAG=$(MODEL_TAG)) $(if $(SHADOW_MODEL_TAG),DELIVERY_ETA_SHADOW_MODEL_TAG=$(SHADOW_MODEL_TAG)) $(BENTOML) build --version $(BENTO_VERSION) .
	@# BentoML 1.4 records the service's models in the bento and copies them from
	@# the model store into the image at containerize time.
	@$(BENTOML) get $(BENTO_NAME):$(BENTO_VERSION) -o json | $(PY) -c \
	  'import json,sys; b=json.load(sys.stdin); print("bento", b["name"] + ":" + b["version"], "models:", sorted({m["tag"] for s in b["services"] for m in s["models"]}))'

# The base image target runs only when the default local base is used.
image: docker-engine bento $(if $(filter $(LOCAL_BASE_IMAGE),$(BASE_IMAGE)),base-image) ## bentoml containerize -> delivery-eta:<version>-<commit> (BASE_IMAGE=...)
	@# DOCKER_BUILDKIT=0: this machine's docker client has no buildx plugin; the
	@# classic builder needs none. network=host: build steps reach the package
	@# registry through the host's network, never through a bridge.
	@# `cd /`: BentoML 1.4.39 re-resolves the bento's Dockerfile template inside its
	@# temporary build context (under $$TMPDIR) and refuses any path that is not
	@# below the current directory; from / every path is.
	cd / && DOCKER_BUILDKIT=0 $(abspath $(BENTOML)) containerize $(BENTO_NAME):$(BENTO_VERSION) \
	  --image-tag $(IMAGE) --image-tag $(IMAGE_NAME):$(APP_VERSION) \
	  --opt network=host --opt force-rm --opt build-arg=BASE_IMAGE=$(BASE_IMAGE)
	@$(DOCKER) image ls $(IMAGE_NAME) --format '{{.Repository}}:{{.Tag}}  {{.Size}}' | grep -F ':$(IMAGE_TAG) '

test-container: docker-engine ## run the image: start->ready time, predict + batch, non-root, clean stop, size
	@$(DOCKER) image inspect $(IMAGE) >/dev/null 2>&1 || $(MAKE) -f $(firstword $(MAKEFILE_LIST)) --no-print-directory image
	deploy/docker/test-container.sh $(IMAGE) $(STOP_GRACE)

COMPOSE_ENV = API_PORT=$(API_PORT) REDIS_PORT=$(REDIS_PORT) PROM_PORT=$(PROM_PORT) BASE_IMAGE=$(LOCAL_BASE_IMAGE)

compose-up: docker-engine ## image + Redis + Prometheus on host networking, loopback only
	@$(DOCKER) image inspect $(IMAGE) >/dev/null 2>&1 || $(MAKE) -f $(firstword $(MAKEFILE_LIST)) --no-print-directory image
	@$(DOCKER) image inspect $(LOCAL_BASE_IMAGE) >/dev/null 2>&1 || $(MAKE) -f $(firstword $(MAKEFILE_LIST)) --no-print-directory base-image
	$(COMPOSE_ENV) deploy/compose/compose.sh up $(IMAGE)

compose-down: ## stop and remove the compose stack
	$(COMPOSE_ENV) deploy/compose/compose.sh down $(IMAGE)

compose-test: compose-up ## smoke test: predictions in the compose stack read their features from Redis
	$(COMPOSE_ENV) deploy/compose/compose.sh test $(IMAGE)

image-name: ## print the image tag that make image builds
	@echo $(IMAGE)

k8s-render: ## print the rendered Kubernetes overlay OVERLAY=production|canary|blue-green
	kubectl kustomize deploy/k8s/overlays/$(OVERLAY)

deploy-test: env ## offline manifest tests only (render, schema validation, policy)
	$(PY) -m pytest -q tests/deploy
