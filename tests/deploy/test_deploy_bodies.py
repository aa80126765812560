"""The bodies the image and compose smoke tests send come from the served contract: the
warm-up's orders and the shell scripts' helper (``python -m models.served_contract``), against a
stub serving a contract with every kind of field, and a service from before ``/contract``."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from types import ModuleType

import pytest

from models.contract import FeatureContract, default_contract
from models.contract.request import order_problems
from tests.harness.contract_stub import contract_stub
from tests.harness.local_server import ROOT
from tests.models.contract.mixed_contract import MIXED


def _warmup() -> ModuleType:
    spec = importlib.util.spec_from_file_location("warmup", ROOT / "deploy/docker/warmup.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _served(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "models.served_contract", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("contract", "expected"),
    [(MIXED, MIXED), (None, default_contract())],
    ids=["mixed", "before-contract-route"],
)
def test_the_warmup_sends_orders_of_the_served_contract(
    contract: FeatureContract | None, expected: FeatureContract
) -> None:
    with contract_stub(contract) as stub:
        order, batch, invalid = _warmup().warmup_bodies(stub.url)
    assert order_problems(expected, order) == []
    assert len(batch) == 10 and all(order_problems(expected, o) == [] for o in batch)
    assert all(batch[1][f] != order[f] for f in expected.entity_fields)  # unknown ids
    assert [p.split(":")[0] for p in order_problems(expected, invalid)] == [
        next(n for n, s in expected.fields.items() if s.required)
    ]


def test_the_shell_scripts_helper_prints_bodies_and_entities_of_the_served_contract() -> None:
    with contract_stub(MIXED) as stub:
        example = _served("example", "--url", stub.url)
        unknown = _served("example", "--url", stub.url, "--unknown-entities")
        chosen = _served("example", "--url", stub.url, "--set", 'courier_id="c_0042"')
        entities = _served("entities", "--url", stub.url)
    for done in (example, unknown, chosen, entities):
        assert done.returncode == 0, done.stderr
    order = json.loads(example.stdout)
    assert order == MIXED.example_order()
    other = json.loads(unknown.stdout)
    assert order_problems(MIXED, other) == []
    assert other["store_id"].startswith("store_new_") and other["weather"] == order["weather"]
    assert json.loads(chosen.stdout)["courier_id"] == "c_0042"
    assert entities.stdout.splitlines() == [
        "store_id store store_avg_delivery_time",
        "courier_id courier courier_avg_delivery_time",
    ]


def test_the_helper_refuses_in_one_line_when_there_is_no_service() -> None:
    done = _served("example", "--url", "http://127.0.0.1:9")
    assert done.returncode == 2
    assert done.stderr.startswith("contract: GET http://127.0.0.1:9/contract")
    assert done.stderr.count("\n") == 1
