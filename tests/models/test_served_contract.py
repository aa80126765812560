"""Reading the contract a tool builds bodies from: a running service's ``GET /contract`` (the
default contract from a service that predates it), a contract file, a stored model's metadata;
and the known entity ids of a stored model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from models.contract import default_contract
from models.contract.request import order_problems
from models.served_contract import (
    ContractUnavailable,
    fetch_contract,
    known_entity_ids,
    main,
    resolve_contract,
    stored_contract,
)
from tests.harness.contract_stub import contract_stub
from tests.models.contract.mixed_contract import MIXED, MIXED_YAML


def test_a_served_contract_is_read_and_a_service_without_the_route_serves_the_default() -> None:
    with contract_stub(MIXED) as stub:
        assert fetch_contract(stub.url) == MIXED
        assert resolve_contract(url=stub.url + "/") == MIXED
    with contract_stub(None) as old:
        assert fetch_contract(old.url) == default_contract()


def test_an_unreachable_service_or_a_bad_file_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ContractUnavailable, match=r"127\.0\.0\.1:9/contract"):
        fetch_contract("http://127.0.0.1:9")
    bad = tmp_path / "bad.yaml"
    bad.write_text(MIXED_YAML.replace("kind: integer", "kind: integr"))
    with pytest.raises(ContractUnavailable, match=r"bad\.yaml:\d+: fields\.items"):
        resolve_contract(contract_file=bad)


def test_a_contract_file_wins_over_the_service(tmp_path: Path) -> None:
    path = tmp_path / "mixed.json"
    path.write_text(json.dumps(MIXED.metadata()))  # JSON is YAML: a served contract saved
    with contract_stub(default_contract()) as stub:
        assert resolve_contract(url=stub.url, contract_file=path) == MIXED
    assert resolve_contract() == default_contract()


def test_a_bodies_file_from_the_command_line(tmp_path: Path, capsys: Any) -> None:
    out = tmp_path / "bodies.jsonl"
    with contract_stub(MIXED) as stub:
        assert main(["bodies", "--url", stub.url, "--out", str(out), "--count", "5"]) == 0
    lines = out.read_text().splitlines()
    assert len(lines) == 5 and all(order_problems(MIXED, json.loads(x)) == [] for x in lines)
    assert "wrote 5 bodies" in capsys.readouterr().out


def test_a_stored_models_contract_and_known_ids(registered: Any) -> None:
    contract = stored_contract(registered.tag)
    assert contract == default_contract()
    known = known_entity_ids(registered.tag, contract, limit=40)
    assert known is not None and list(known) == list(contract.entity_fields)
    entities = json.loads((Path(registered.path) / "entity_features.json").read_text())
    for field, ids in known.items():
        table = entities[contract.entity_feature(field)]
        assert 0 < len(ids) <= 40 and set(ids) <= set(table)
    assert known_entity_ids("delivery_eta:notstored", contract) is None
    with pytest.raises(ContractUnavailable, match="not in the model store"):
        stored_contract("delivery_eta:notstored")
