"""The server refuses to start, with a one-line reason, when it could not predict."""

import shutil
import subprocess
from pathlib import Path

import bentoml
import pytest
import yaml

from tests.harness.local_server import ROOT, free_port, serve_command


def _serve(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        serve_command(free_port()),
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def _refusal(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stderr[-2000:]
    lines = [
        line
        for line in result.stderr.splitlines()
        if line.startswith("delivery-eta: refusing to start")
    ]
    assert len(lines) == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    return lines[0]


def test_missing_model_refuses_to_start() -> None:
    line = _refusal(_serve({"DELIVERY_ETA_MODEL_TAG": "delivery_eta:nosuchversion"}))
    assert "not in the model store" in line


def test_invalid_settings_refuse_to_start() -> None:
    line = _refusal(_serve({"DELIVERY_ETA_FEATURE_STORE_BACKEND": "redis"}))
    assert "DELIVERY_ETA_REDIS_URL" in line


@pytest.mark.parametrize("tamper", ["feature_names", "checksum"])
def test_artifact_not_matching_its_metadata_refuses_to_start(
    registered, tmp_path: Path, tamper: str
) -> None:  # type: ignore[no-untyped-def]
    source = Path(bentoml.models.get(registered.tag).path)
    version = f"startup{tamper.replace('_', '')}"
    target = source.parent / version
    shutil.copytree(source, target)
    info = yaml.safe_load((target / "model.yaml").read_text())
    info["version"] = version
    if tamper == "feature_names":
        info["metadata"]["feature_names"] = info["metadata"]["feature_names"][::-1]
    else:
        with (target / "model.joblib").open("ab") as handle:
            handle.write(b"corrupted")
    (target / "model.yaml").write_text(yaml.safe_dump(info))
    line = _refusal(_serve({"DELIVERY_ETA_MODEL_TAG": f"delivery_eta:{version}"}))
    assert ("trained on features" if tamper == "feature_names" else "sha256") in line
