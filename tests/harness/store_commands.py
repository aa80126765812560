"""The user's commands (``make`` targets, ``train.py``) run against a model store of a test's own,
and an order-file row turned into the request the API takes."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from models.contract import FeatureContract
from tests.harness.local_server import ROOT


def run_with_store(command: list[str], home: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """``command`` from the repository root with ``BENTOML_HOME=home`` (plus ``env``), output
    captured; ten minutes at most."""
    return subprocess.run(
        command,
        cwd=ROOT,
        env={**os.environ, "BENTOML_HOME": str(home), **env},
        capture_output=True,
        text=True,
        timeout=600,
    )


def api_order(row: dict[str, object], contract: FeatureContract) -> dict[str, object]:
    """A row of an order file as the API takes it (the file holds the request's columns, as
    numpy scalars the JSON encoder does not know)."""
    kinds = {"number": float, "integer": int, "boolean": bool, "entity": str}
    return {
        name: kinds.get(spec.kind, lambda v: v)(row[name])  # type: ignore[operator]
        for name, spec in contract.fields.items()
    }
