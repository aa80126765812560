"""The wrk scripts' bodies: written from the served contract (a stub serves one with every kind
of field), one valid body per line; predict.lua, bench.lua and status_tally.lua cycle through
them, and refuse to run without them."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from loadtest.bench.measure import BATCH_SCRIPT, SINGLE_SCRIPT
from loadtest.wrk_bodies import BATCH_BODIES, SINGLE_BODIES, write_wrk_bodies
from models.contract import default_contract
from models.contract.request import order_problems
from tests.harness.contract_stub import contract_stub
from tests.harness.local_server import ROOT
from tests.models.contract.mixed_contract import MIXED

TALLY_SCRIPT = ROOT / "loadtest" / "status_tally.lua"


def test_bodies_are_the_served_contracts_one_per_line(tmp_path: Path) -> None:
    with contract_stub(MIXED) as stub:
        bodies = write_wrk_bodies(stub.url, tmp_path, [7, 50])
    assert bodies.contract == MIXED
    singles = bodies.single.read_text().splitlines()
    assert len(singles) == SINGLE_BODIES
    assert all(order_problems(MIXED, json.loads(line)) == [] for line in singles)
    for rows in (7, 50):
        batches = [json.loads(line) for line in bodies.batch[rows].read_text().splitlines()]
        assert len(batches) == BATCH_BODIES
        assert {len(b["orders"]) for b in batches} == {rows}
        assert all(order_problems(MIXED, o) == [] for b in batches for o in b["orders"])
    assert order_problems(MIXED, json.loads(bodies.probe)) == []
    assert bodies.script_args(7) == [str(bodies.batch[7])]


def test_a_service_without_the_contract_route_gets_default_bodies(tmp_path: Path) -> None:
    with contract_stub(None) as stub:  # 404 on GET /contract: an older service
        bodies = write_wrk_bodies(stub.url, tmp_path)
    assert bodies.contract == default_contract()


def _wrk(script: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["wrk", "-t2", "-c4", "-d2s", "-s", str(script), url, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk not installed (make system-deps)")
def test_the_wrk_scripts_send_the_bodies_and_need_them(tmp_path: Path) -> None:
    with contract_stub(MIXED) as stub:
        bodies = write_wrk_bodies(stub.url, tmp_path, [20])
        single = _wrk(SINGLE_SCRIPT, f"{stub.url}/v1/predict", "--", *bodies.script_args())
        batch = _wrk(BATCH_SCRIPT, f"{stub.url}/v1/predict/batch", "--", *bodies.script_args(20))
        tally = _wrk(TALLY_SCRIPT, f"{stub.url}/v1/predict", "--", *bodies.script_args())
        missing = _wrk(SINGLE_SCRIPT, f"{stub.url}/v1/predict")
    for run in (single, batch, tally):
        assert run.returncode == 0, run.stderr
        assert "Non-2xx" not in run.stdout, run.stdout
    assert stub.refusals == []
    assert stub.requests["POST /v1/predict"] > 100
    assert stub.requests["POST /v1/predict/batch"] > 20
    assert "status 200 " in tally.stdout and "retry_after_missing 0" in tally.stdout
    assert "pass a bodies file" in missing.stdout + missing.stderr


def test_lone_batch_sends_orders_of_the_served_contract() -> None:
    with contract_stub(MIXED) as stub:
        done = subprocess.run(
            [
                sys.executable,
                "loadtest/lone_batch.py",
                "--url",
                stub.url,
                "--rows",
                "40",
                "--calls",
                "8",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 0, done.stderr
    assert "lone 40-row calls: p50" in done.stdout
    assert stub.requests["POST /v1/predict/batch"] == 8 and stub.refusals == []
