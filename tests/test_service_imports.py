"""The serving process imports no training code: importing ``service.py`` (what every worker
does) leaves the training and promotion packages, the data generator and matplotlib unloaded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.harness.local_server import ROOT

# Training, the synthetic generator, the model card (matplotlib), the promotion gate, and the
# offline commands with the log's readers (operations/ is not even in the server's image).
TRAINING_ONLY = (
    "models.training",
    "models.promotion",
    "matplotlib",
    "operations",
    "prediction_log.reading",
    "prediction_log.sqlite_reader",
    "prediction_log.redis_reader",
)


def _modules_after_import(module: str, registered, tmp_path: Path) -> list[str]:  # type: ignore[no-untyped-def]
    """Every module loaded by ``import module`` in a fresh interpreter, as a worker starts."""
    probe = f"import sys, json, {module}; print(json.dumps(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        env={
            **os.environ,
            "DELIVERY_ETA_MODEL_TAG": registered.tag,
            "DELIVERY_ETA_PREDICTION_LOG_PATH": str(tmp_path / "predictions.sqlite3"),
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return list(json.loads(result.stdout.strip().splitlines()[-1]))


def _training_modules(modules: list[str]) -> list[str]:
    return [m for m in modules if m.split(".")[0] == "matplotlib" or m.startswith(TRAINING_ONLY)]


def test_importing_the_service_loads_no_training_code(registered, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    modules = _modules_after_import("service", registered, tmp_path)
    assert "service" in modules and "models.store.artifact" in modules
    assert _training_modules(modules) == []


def test_the_probe_sees_training_code_where_it_is_imported(registered, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # train.py imports the training package: the same probe must report it (not vacuous).
    found = _training_modules(_modules_after_import("train", registered, tmp_path))
    assert "models.training.fit" in found
    assert "models.training.synthetic_orders" in found
    assert "matplotlib" in found
