"""The server refuses to start, with a one-line reason, when it could not predict."""

import os
import shutil
import subprocess
import time
from pathlib import Path

import bentoml
import pytest
import yaml

from tests.harness.local_server import ROOT, free_port, serve_command, stop_process_group


def _serve(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
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
    (target / "model.yaml").write_text(yaml.safe_dump(info, sort_keys=False))
    line = _refusal(_serve({"DELIVERY_ETA_MODEL_TAG": f"delivery_eta:{version}"}))
    assert ("trained on features" if tamper == "feature_names" else "sha256") in line


def _read_only_dir(tmp_path: Path) -> Path:
    """A directory on a read-only filesystem (a read-only tmpfs: root only, and root writes
    through mere file permissions)."""
    if os.geteuid() != 0:
        pytest.skip("a read-only mount needs root")
    directory = tmp_path / "readonly"
    directory.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(directory)], check=True
    )
    return directory


def _serve_at_most(env: dict[str, str], timeout_s: float) -> subprocess.CompletedProcess[str]:
    """``_serve``, but a server that does not exit within ``timeout_s`` (workers crash-looping)
    is stopped with its whole process group and reported as exit code None."""
    proc = subprocess.Popen(
        serve_command(free_port()),
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        stop_process_group(proc)  # type: ignore[arg-type]
        out, err = proc.communicate()
        return subprocess.CompletedProcess(proc.args, None, out, err)  # type: ignore[arg-type]
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


# A parent that is a file is refused the same way (unit test of unusable_reason): one server
# start fewer.
@pytest.mark.parametrize("unusable", ["read_only_filesystem", "not_sqlite"])
def test_an_unusable_prediction_log_path_refuses_to_start(
    registered, tmp_path: Path, unusable: str
) -> None:  # type: ignore[no-untyped-def]
    if unusable == "read_only_filesystem":
        path = _read_only_dir(tmp_path) / "predictions.sqlite3"
    else:
        path = tmp_path / "predictions.sqlite3"
        path.write_bytes(b"these are not the pages of a SQLite database\n" * 100)
    env = {"DELIVERY_ETA_MODEL_TAG": registered.tag, "DELIVERY_ETA_PREDICTION_LOG_PATH": str(path)}
    started = time.monotonic()
    try:
        result = _serve_at_most(env, timeout_s=60)
    finally:
        if unusable == "read_only_filesystem":
            subprocess.run(["umount", str(path.parent)], check=True)
    elapsed = time.monotonic() - started
    print(
        f"{unusable}: exit {result.returncode} after {elapsed:.1f} s,"
        f" {result.stderr.count('Traceback')} tracebacks"
    )
    line = _refusal(result)
    assert "prediction log" in line and str(path) in line
