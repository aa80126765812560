"""The locustfile's payloads, built from a contract and checked against it (the default one and
one with every kind of field), and a short real locust run against a stub serving a contract.

Importing locust monkey-patches the whole process with gevent, so the checks run in a child
interpreter.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.harness.contract_stub import contract_stub
from tests.models.contract.mixed_contract import MIXED, MIXED_YAML

ROOT = Path(__file__).resolve().parents[2]

CHECK = r"""
import json, random, sys, types
from loadtest import locustfile as lf
from loadtest.slo import INVALID_PREFIX
from models.contract import default_contract, parse_contract
from models.contract.bodies import request_fields
from models.contract.request import order_problems

contract = default_contract() if sys.argv[1] == "default" else parse_contract(sys.argv[1])
mix = lf.Mix(contract)

def valid_order(order):
    return isinstance(order, dict) and not order_problems(contract, order)

def valid_body(path, body, content_type):
    # A non-JSON content type is refused (415) whatever the body says.
    if content_type != "application/json":
        return False
    try:
        payload = json.loads(body)
    except ValueError:
        return False
    if path == "/v1/predict":
        return valid_order(payload)
    orders = payload.get("orders") if isinstance(payload, dict) else None
    return (
        isinstance(orders, list) and 1 <= len(orders) <= 1000 and all(map(valid_order, orders))
    )

rng = random.Random(7)
orders = [mix.random_order(rng) for _ in range(5000)]
batches = [mix.random_batch(rng) for _ in range(50)]
picked = [mix.invalid_request(rng) for _ in range(3000)]
weights = (lf.WEIGHT_PREDICT, lf.WEIGHT_BATCH, lf.WEIGHT_HEALTH, lf.WEIGHT_INVALID)
unknown = {
    f: sum(o[f] not in mix.generator.known_ids[f] for o in orders) for f in contract.entity_fields
}
print(json.dumps({
    "valid_orders": sum(map(valid_order, orders)),
    "unknown_ids": unknown,
    "valid_batches": sum(
        valid_body("/v1/predict/batch", json.dumps({"orders": b}), "application/json")
        for b in batches
    ),
    "batch_sizes": [min(len(b) for b in batches), max(len(b) for b in batches)],
    "accepted_invalid": sorted({r.kind for r in picked if valid_body(r.path, r.body, r.content_type)}),
    "invalid_kinds": len({r.kind for r in picked}),
    "all_kinds": len(mix.invalid_predict) + len(mix.invalid_batch),
    "broken_fields": sorted({r.field for r in picked if r.field}),
    "request_fields": sorted(request_fields(contract)),
    "invalid_names": sorted({r.name for r in picked}),
    "invalid_prefix": INVALID_PREFIX,
    "invalid_share": lf.WEIGHT_INVALID / sum(weights),
    "names": [lf.NAME_PREDICT, lf.NAME_BATCH, lf.NAME_HEALTH],
    "user_tasks": len(lf.DeliveryEtaClient.tasks),
    "no_answer": lf._what_failed(
        types.SimpleNamespace(status_code=0, error=ConnectionResetError(104, "reset"), text="")
    ),
    "refused": lf._what_failed(types.SimpleNamespace(status_code=503, text="overloaded")),
}))
"""


def run_check(contract: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", CHECK, contract],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("contract", ["default", MIXED_YAML], ids=["default", "mixed"])
def test_locust_mix_payloads(contract: str) -> None:
    result = run_check(contract)
    # Realistic orders all pass the API's validation; ~10 % of ids are unknown to the store.
    assert result["valid_orders"] == 5000
    assert all(350 <= n <= 650 for n in result["unknown_ids"].values()), result["unknown_ids"]
    assert result["valid_batches"] == 50
    assert result["batch_sizes"][0] >= 10 and result["batch_sizes"][1] <= 500
    # Every invalid payload is one the API must refuse (4xx), every kind is sent, and every
    # request field (overrides included) is broken by some payload.
    assert result["accepted_invalid"] == []
    assert result["invalid_kinds"] == result["all_kinds"] >= 20
    assert set(result["request_fields"]) <= set(result["broken_fields"])
    # Invalid payloads are ~2 % of requests and carry the name slo.py recognises.
    assert result["invalid_share"] == 0.02
    assert all(name.startswith(result["invalid_prefix"]) for name in result["invalid_names"])
    assert len(result["invalid_names"]) == 2
    assert not any(name.startswith(result["invalid_prefix"]) for name in result["names"])
    assert result["user_tasks"] == 100  # locust expands weights into the task list
    # A failure with no answer names the connection error, not an empty "HTTP 0: ".
    assert result["no_answer"] == "no answer: ConnectionResetError(104, 'reset')"
    assert result["refused"] == "HTTP 503: overloaded"


PREDICTS_WANTED = 150
"""Single predictions the stub must have answered before locust is stopped: the run lasts
until the traffic is there, not a fixed number of seconds (a busy machine starts locust's users
late: its first user imports bentoml to read the model store's ids, which blocks gevent's hub,
the run-time timer included, for over a minute when the CPUs are busy -- a 6 s run then ended
before any request and wrote no ``POST /v1/predict`` row at all)."""


def run_locust_until(stub: Any, csv_prefix: Path, limit_s: float = 300) -> int:
    """Run the locustfile against ``stub`` until it has answered ``PREDICTS_WANTED`` single
    predictions (at most ``limit_s``), then stop locust as an operator would (SIGTERM: it writes
    its summary and CSVs); returns locust's exit code."""
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        "loadtest/locustfile.py",
        "--headless",
        "-u",
        "20",
        "-r",
        "20",
        "-t",
        f"{limit_s:.0f}s",
        "--host",
        stub.url,
        "--csv",
        str(csv_prefix),
        "--only-summary",
    ]
    log_path = csv_prefix.with_suffix(".log")
    # Its output goes to a file, not a pipe nobody drains while the run goes on.
    with open(log_path, "w") as log:
        locust = subprocess.Popen(
            command,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "LOADTEST_WAIT": "0.05,0.1"},
        )
        try:
            deadline = time.monotonic() + limit_s
            while stub.requests["POST /v1/predict"] < PREDICTS_WANTED and locust.poll() is None:
                assert time.monotonic() < deadline, "locust never sent enough single predictions"
                time.sleep(0.2)
            # The CSVs are rewritten every second: let them catch up with what the stub counted.
            time.sleep(2.5)
            locust.send_signal(signal.SIGTERM)
            locust.wait(timeout=60)
        finally:
            if locust.poll() is None:
                locust.kill()
                locust.wait()
    assert locust.returncode in (0, 1), log_path.read_text()[-3000:]
    return locust.returncode


def test_locust_reads_the_served_contract_and_every_payload_gets_the_expected_answer(
    tmp_path: Path,
) -> None:
    with contract_stub(MIXED) as stub:
        run_locust_until(stub, tmp_path / "run")
    assert stub.requests["GET /contract"] >= 1
    with open(tmp_path / "run_stats.csv") as handle:
        rows = {row["Name"]: row for row in csv.DictReader(handle)}
    # The stub validates against the contract it serves: valid orders pass, the invalid ones
    # are refused naming their field -- no failure of either kind.
    assert int(rows["POST /v1/predict"]["Request Count"]) > 50
    assert {name: int(row["Failure Count"]) for name, row in rows.items()} == dict.fromkeys(
        rows, 0
    ), (tmp_path / "run_failures.csv").read_text()
