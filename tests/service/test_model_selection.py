"""Which model a real server serves: the ``stage=production`` one by default, a pin if set.

A private model store holds two copies of the session model: an older one labelled
``stage=production`` and a newer ``stage=candidate`` -- so ``delivery_eta:latest`` is the candidate
and serving "latest" would be visibly wrong. ``model_version`` in every response says which
model answered.
"""

from __future__ import annotations

import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
import yaml

from framework_internals import bentoml_worker_processes
from models.store.artifact import MODEL_NAME
from tests.harness.local_server import LocalServer, local_server
from tests.reliability.conftest import KNOWN_ORDER

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def two_stage_home(registered: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """BENTOML_HOME with an older production model and a newer candidate (= latest)."""
    home = tmp_path_factory.mktemp("selection-bentoml-home")
    created = datetime.now(UTC) - timedelta(hours=1)
    tags = {}
    for minutes, stage in enumerate(("production", "candidate")):
        version = f"selection{stage}"
        target = home / "models" / MODEL_NAME / version
        shutil.copytree(registered.path, target)
        info = yaml.safe_load((target / "model.yaml").read_text())
        info["version"] = version
        info["labels"] = {**info["labels"], "stage": stage}
        info["creation_time"] = (created + timedelta(minutes=minutes)).isoformat()
        (target / "model.yaml").write_text(yaml.safe_dump(info, sort_keys=False))
        tags[stage] = f"{MODEL_NAME}:{version}"
    return {"home": home, **tags}


def _serve(home: dict[str, Any], workdir: Path, **env: str) -> Any:
    """A server on the two-stage store, with no model pin unless ``env`` sets one."""
    return local_server(
        workdir / "server.log",
        env={
            "BENTOML_HOME": str(home["home"]),
            "DELIVERY_ETA_PREDICTION_LOG_PATH": str(workdir / "predictions.sqlite3"),
            **env,
        },
    )


def _served_versions(server: LocalServer, calls: int) -> set[str]:
    return {
        httpx.post(f"{server.url}/v1/predict", json=KNOWN_ORDER, timeout=10).json()["model_version"]
        for _ in range(calls)
    }


def _workers(server: LocalServer) -> list[psutil.Process]:
    return bentoml_worker_processes(psutil.Process(server.proc.pid))


@pytest.fixture
def no_pin(monkeypatch: pytest.MonkeyPatch) -> None:
    """The server inherits this environment: make sure no pin leaks in from the caller's."""
    monkeypatch.delenv("DELIVERY_ETA_MODEL_TAG", raising=False)


@pytest.mark.usefixtures("no_pin")
def test_serves_the_production_model_not_latest_and_respawned_workers_keep_it(
    two_stage_home: dict[str, Any], tmp_path: Path
) -> None:
    with _serve(two_stage_home, tmp_path, DELIVERY_ETA_WORKERS="2") as server:
        assert _served_versions(server, 20) == {two_stage_home["production"]}
        health = httpx.get(f"{server.url}/health", timeout=10).json()
        assert health["model_version"] == two_stage_home["production"]
        assert health["model_stage"] == "production"

        # Promote the candidate on disk, then kill every worker: the respawned workers must keep
        # serving what this server started with (a restart, not a crash, picks up promotions).
        candidate_yaml = (
            two_stage_home["home"] / "models" / MODEL_NAME / "selectioncandidate" / "model.yaml"
        )
        original = candidate_yaml.read_text()
        try:
            info = yaml.safe_load(original)
            info["labels"]["stage"] = "production"
            info["creation_time"] = datetime.now(UTC).isoformat()
            candidate_yaml.write_text(yaml.safe_dump(info, sort_keys=False))
            killed = _workers(server)
            assert len(killed) == 2, [p.cmdline() for p in killed]
            for worker in killed:
                worker.kill()
            psutil.wait_procs(killed, timeout=10)
            # Every answer from here on comes from a respawned worker.
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                try:
                    if httpx.post(
                        f"{server.url}/v1/predict", json=KNOWN_ORDER, timeout=5
                    ).is_success:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.2)
            else:
                pytest.fail("no respawned worker answered within 90 s")
            respawned = _workers(server)
            assert respawned and not {p.pid for p in respawned} & {p.pid for p in killed}
            assert _served_versions(server, 20) == {two_stage_home["production"]}
        finally:
            candidate_yaml.write_text(original)


@pytest.mark.usefixtures("no_pin")
def test_a_pinned_tag_wins_over_the_production_label(
    two_stage_home: dict[str, Any], tmp_path: Path
) -> None:
    pinned = two_stage_home["candidate"]
    with _serve(two_stage_home, tmp_path, DELIVERY_ETA_MODEL_TAG=pinned) as server:
        assert _served_versions(server, 5) == {pinned}
        assert httpx.get(f"{server.url}/health", timeout=10).json()["model_stage"] == "candidate"
