"""Names of the servers under test, their labels in the report, and the machine's cores."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

# The repository root: tests.harness.local_server.ROOT, computed here so that the modules that
# start no server (measure, report, ...) do not import the test harness.
REPO_ROOT = Path(__file__).resolve().parents[2]
CORES = os.cpu_count() or 1

BENTO, REFERENCE, NO_BATCH, VARIANT = "bentoml", "reference", "bentoml-nobatch", "variant"
LABELS = {
    BENTO: "BentoML (batching on)",
    REFERENCE: "plain FastAPI",
    NO_BATCH: "BentoML batching off",
    VARIANT: "BentoML variant",  # set from --variant
}
SHORT = {REFERENCE: "plain", NO_BATCH: "off", VARIANT: "variant"}
# Connections of the cold-start run (the first seconds of load on each server).
COLD_CONNECTIONS = 64


@dataclass
class Target:
    """A server under test."""

    name: str
    url: str
    pid: int
