"""`make canary`: golden orders pass against a good model and a regression fails it; golden
orders of another contract are refused before anything is sent; ``--regenerate`` writes golden
orders of the served contract (a stub serves one with every kind of field)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from models.contract import default_contract
from models.contract.request import order_problems
from tests.harness.contract_stub import contract_stub
from tests.harness.local_server import ROOT, LocalServer
from tests.models.contract.mixed_contract import MIXED

GOLDEN = ROOT / "deploy" / "canary" / "golden_orders.json"


def _canary(url: str, golden: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "deploy/canary/canary.py", "--url", url, "--golden", str(golden), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_checked_in_golden_orders_are_the_default_contracts() -> None:
    golden = json.loads(GOLDEN.read_text())
    assert golden and all(order_problems(default_contract(), c["order"]) == [] for c in golden)


@pytest.mark.server
def test_golden_orders_pass_against_the_served_model(server: LocalServer) -> None:
    result = _canary(server.url, GOLDEN)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "CANARY: PASS" in result.stdout


@pytest.mark.server
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
    result = _canary(server.url, tampered)
    assert result.returncode == 1
    assert f"REGRESSION {golden[1]['name']}" in result.stdout


def test_golden_orders_of_another_contract_are_refused_before_anything_is_sent() -> None:
    with contract_stub(MIXED) as stub:
        result = _canary(stub.url, GOLDEN)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "does not fit the contract" in result.stderr
    first = json.loads(GOLDEN.read_text())[0]["name"]
    assert f"{first}: " in result.stderr
    assert "weather: Field required" in result.stderr  # the served contract's field
    assert f"{default_contract().entity_fields[0]}: Extra inputs are not permitted" in result.stderr
    assert "--regenerate" in result.stderr
    assert not [r for r in stub.requests if r.startswith("POST")]


def test_regenerate_writes_golden_orders_of_the_served_contract(tmp_path: Path) -> None:
    golden_path = tmp_path / "golden.json"
    with contract_stub(MIXED) as stub:
        written = _canary(stub.url, golden_path, "--regenerate")
        assert written.returncode == 0, written.stdout + written.stderr
        checked = _canary(stub.url, golden_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "CANARY: PASS" in checked.stdout
    golden = json.loads(golden_path.read_text())
    names = [case["name"] for case in golden]
    assert names[0] == "example"
    # Every category and boolean value, every band of the number cohort was asked about.
    sent = {name: {json.dumps(c["order"].get(name)) for c in golden} for name in MIXED.fields}
    assert sent["weather"] == {'"sunny"', '"rain"', '"fog"'}
    assert sent["vehicle"] == {'"bike"', '"car"', '"canary_unseen_value"'}
    assert sent["city_tier"] == {"1", "2", "3"} and sent["festival"] == {"false", "true"}
    basket = {int(v) for v in sent["items"]}
    assert [b for b in basket if b < 5] and [b for b in basket if 5 <= b < 10]
    assert [b for b in basket if b >= 10]
    for case in golden:
        assert order_problems(MIXED, case["order"]) == []
        assert case["expected_min"] < case["expected_max"]
    assert stub.refusals == []


def test_an_unreachable_service_is_a_refusal_not_a_regression(tmp_path: Path) -> None:
    result = _canary("http://127.0.0.1:9", GOLDEN)
    assert result.returncode == 2
    assert "cannot read the served contract" in result.stderr
