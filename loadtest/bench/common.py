"""Names of the servers under test, their labels in the report, and the machine's cores."""

from __future__ import annotations

import os
from dataclasses import dataclass

from loadtest.servers import ROOT

# The repository root, where the servers run and the results folder is.
REPO_ROOT = ROOT
CORES = os.cpu_count() or 1

# Servers (kinds of target). A target is one server at one worker count.
SERVICE = "service"  # bentoml serve service:DeliveryETA, as shipped
TUTORIAL = "tutorial"  # loadtest/tutorial_app.py: FastAPI + one sklearn model, as tutorials do
FASTAPI_FLOOR = "fastapi-floor"  # loadtest/floors/fastapi_floor.py: validated order, constant out
BENTOML_FLOOR = "bentoml-floor"  # loadtest/floors/bentoml_floor.py: the same on BentoML
# The BentoML floor with tracing off, as the service runs (DELIVERY_ETA_TRACING=false).
BENTOML_FLOOR_NO_TRACING = "bentoml-floor-notrace"
NO_BATCH = "bentoml-nobatch"  # the service with adaptive batching off
VARIANT = "variant"  # the service with --variant settings
SERVERS = (
    SERVICE,
    TUTORIAL,
    FASTAPI_FLOOR,
    BENTOML_FLOOR,
    BENTOML_FLOOR_NO_TRACING,
    NO_BATCH,
    VARIANT,
)
DEFAULT_SERVERS = (SERVICE, TUTORIAL, FASTAPI_FLOOR, BENTOML_FLOOR, BENTOML_FLOOR_NO_TRACING)
# Names accepted on the command line for a server: the service was called "bentoml" before.
ALIASES = {"bentoml": SERVICE}

LABELS = {
    SERVICE: "service (BentoML, batching on)",
    TUTORIAL: "tutorial FastAPI app",
    FASTAPI_FLOOR: "FastAPI floor",
    BENTOML_FLOOR: "BentoML floor",
    BENTOML_FLOOR_NO_TRACING: "BentoML floor, tracing off",
    NO_BATCH: "service, batching off",
    VARIANT: "service variant",  # set from --variant
}
# The service's processes: started from the same code, so they are pinned to one model version
# and report adaptive-batching counters on /metrics.
SERVICE_SERVERS = frozenset({SERVICE, NO_BATCH, VARIANT})
# Servers that get the /v1/predict/batch runs. The floors have no batch route; batching off
# (MAX_BATCH_SIZE=1) is about single requests, as before.
BATCH_ROUTE_SERVERS = frozenset({SERVICE, VARIANT, TUTORIAL})
# Connections of the cold-start run (the first seconds of load on each server).
COLD_CONNECTIONS = 64


@dataclass
class Target:
    """A running server under test: one server at one worker count."""

    name: str  # unique in the run: the server, plus "@w<N>" when it runs at several counts
    server: str
    workers: int
    url: str
    pid: int

    @property
    def has_batch_route(self) -> bool:
        return self.server in BATCH_ROUTE_SERVERS

    @property
    def reports_batching(self) -> bool:
        """Whether /metrics has the adaptive-batching histogram."""
        return self.server in SERVICE_SERVERS
