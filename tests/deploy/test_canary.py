"""`make canary`: golden orders pass against a good model and a regression fails it."""

import json
import subprocess
import sys
from pathlib import Path

from tests.harness.local_server import ROOT, LocalServer

GOLDEN = ROOT / "deploy" / "canary" / "golden_orders.json"


def _canary(server: LocalServer, golden: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "deploy/canary/canary.py", "--url", server.url, "--golden", str(golden)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_golden_orders_pass_against_the_served_model(server: LocalServer) -> None:
    result = _canary(server, GOLDEN)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "CANARY: PASS" in result.stdout


def test_an_answer_outside_its_expected_range_fails_the_canary(
    server: LocalServer, tmp_path: Path
) -> None:
    golden = json.loads(GOLDEN.read_text())
    golden[1] = {
        **golden[1],
        "expected_min": 1.0,
        "expected_max": 2.0,
    }  # nothing real predicts this
    tampered = tmp_path / "golden.json"
    tampered.write_text(json.dumps(golden))
    result = _canary(server, tampered)
    assert result.returncode == 1
    assert f"REGRESSION {golden[1]['name']}" in result.stdout
