"""train.py as `make serve` runs it: trains into an empty store once, then leaves it alone."""

import os
import subprocess
import sys
from pathlib import Path

from tests.harness.local_server import ROOT


def _train(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "train.py", "--small", "--card-dir", str(home / "card"), *args],
        cwd=ROOT,
        env={**os.environ, "BENTOML_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_if_missing_trains_into_an_empty_store_then_skips(tmp_path: Path) -> None:
    first = _train(tmp_path, "--if-missing")
    assert first.returncode == 0, first.stderr[-2000:]
    assert "registered delivery_eta:" in first.stdout
    assert "ratio" in first.stdout and "coverage" in first.stdout
    assert (tmp_path / "card" / "model_card.md").is_file()
    assert (tmp_path / "card" / "interval_coverage.png").read_bytes().startswith(b"\x89PNG")

    second = _train(tmp_path, "--if-missing")
    assert second.returncode == 0, second.stderr[-2000:]
    assert "registered" not in second.stdout
    assert "skipping training" in second.stderr
    assert len(list((tmp_path / "models" / "delivery_eta").iterdir())) == 2  # one version + latest


def test_if_missing_retrains_when_the_latest_model_is_not_servable(tmp_path: Path) -> None:
    import yaml

    assert _train(tmp_path).returncode == 0
    (version_dir,) = [p for p in (tmp_path / "models" / "delivery_eta").iterdir() if p.is_dir()]
    info = yaml.safe_load((version_dir / "model.yaml").read_text())
    del info["metadata"]["reference_stats"]  # as written by an older version of this code
    (version_dir / "model.yaml").write_text(yaml.safe_dump(info))

    upgraded = _train(tmp_path, "--if-missing")
    assert upgraded.returncode == 0, upgraded.stderr[-2000:]
    assert "no servable model" in upgraded.stderr
    assert "registered delivery_eta:" in upgraded.stdout
