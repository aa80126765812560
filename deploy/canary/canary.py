"""Golden requests: send checked-in orders to a deployed service and check every answer.

    python deploy/canary/canary.py --url http://127.0.0.1:3000          # exit 1 on any regression
    python deploy/canary/canary.py --url ... --regenerate [--golden F]  # golden orders + ranges

The golden orders are request bodies of the service's feature contract. Before sending anything
the canary reads the contract the service serves (``GET /contract``; ``--contract FILE``
instead) and checks that every golden order is valid for it: golden orders written for another
contract are refused (exit 2), naming the order and the fields, with the command that writes
golden orders for this one. ``golden_orders.json`` holds the default contract's.

``--regenerate`` builds the golden orders from the served contract
(``models.contract.golden_orders.golden_variations``: the example order, then one order per cohort band
of each number field and per value of each boolean and category field) and records the
reference model's answers. Entity ids are ones no feature store holds (or the golden order
carries its entity averages), so the expected range depends only on the model -- not on which
entity snapshot a deployment holds. Ranges are the reference model's prediction +- max(3 min,
12 %): a new model that moves a typical order by more than that is a regression worth a human
look before it takes traffic.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import httpx

from models.contract import FeatureContract
from models.contract.golden_orders import golden_variations
from models.contract.request import order_problems
from models.served_contract import ContractUnavailable, resolve_contract

GOLDEN = Path(__file__).with_name("golden_orders.json")
PREDICTION_FIELDS = {
    "predicted_delivery_time_min": float,
    "confidence_interval_lower": float,
    "confidence_interval_upper": float,
    "model_version": str,
    "prediction_id": str,
    "latency_ms": float,
    "features_source": dict,
}
MARGIN_MIN, MARGIN_SHARE = 3.0, 0.12
"""An expected range is the reference prediction +- max(3 min, 12 %)."""


def invalid_golden(contract: FeatureContract, golden: list[dict[str, Any]]) -> list[str]:
    """One line per golden order the contract would refuse, naming the order and the fields."""
    lines = []
    for case in golden:
        order = case.get("order")
        if not isinstance(order, dict):
            lines.append(f"{case.get('name', '?')}: no order")
            continue
        problems = order_problems(contract, order)
        if problems:
            lines.append(f"{case['name']}: {'; '.join(problems)}")
    return lines


def check(url: str, golden: list[dict[str, Any]]) -> list[str]:
    """Problems found (empty when every answer has the schema and lies in its range)."""
    problems = []
    with httpx.Client(base_url=url, timeout=10) as client:
        for case in golden:
            response = client.post("/v1/predict", json=case["order"])
            if response.status_code != 200:
                problems.append(
                    f"{case['name']}: HTTP {response.status_code} {response.text[:200]}"
                )
                continue
            body = response.json()
            wrong = [
                k for k, kind in PREDICTION_FIELDS.items() if not isinstance(body.get(k), kind)
            ]
            if wrong or set(body) != set(PREDICTION_FIELDS):
                problems.append(
                    f"{case['name']}: schema mismatch in {wrong or sorted(set(body) ^ set(PREDICTION_FIELDS))}"
                )
                continue
            point = body["predicted_delivery_time_min"]
            if not case["expected_min"] <= point <= case["expected_max"]:
                problems.append(
                    f"{case['name']}: {point:.2f} min outside [{case['expected_min']}, {case['expected_max']}]"
                )
            if not body["confidence_interval_lower"] <= point <= body["confidence_interval_upper"]:
                problems.append(f"{case['name']}: interval does not contain the prediction")
            print(
                f"  {case['name']:<32} {point:6.2f} min  expected [{case['expected_min']}, {case['expected_max']}]"
            )
        batch = client.post("/v1/predict/batch", json={"orders": [c["order"] for c in golden]})
        if batch.status_code != 200 or len(batch.json().get("predictions", [])) != len(golden):
            problems.append(f"batch: HTTP {batch.status_code}")
    return problems


def regenerate(url: str, contract: FeatureContract) -> list[dict[str, Any]]:
    """Golden orders of ``contract`` with their expected ranges from the service at ``url``
    (the reference model)."""
    golden = []
    with httpx.Client(base_url=url, timeout=10) as client:
        for name, order in golden_variations(contract):
            point = (
                client.post("/v1/predict", json=order)
                .raise_for_status()
                .json()["predicted_delivery_time_min"]
            )
            margin = max(MARGIN_MIN, MARGIN_SHARE * point)
            golden.append(
                {
                    "name": name,
                    "order": order,
                    "expected_min": round(point - margin, 1),
                    "expected_max": round(point + margin, 1),
                }
            )
    return golden


def main(argv: list[str] | None = None) -> int:
    """Check (exit 0 pass, 1 regression), or regenerate; exit 2 when nothing could be checked
    (the contract cannot be read, or the golden orders are not valid for it)."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", required=True)
    parser.add_argument("--golden", type=Path, default=GOLDEN)
    parser.add_argument(
        "--contract", type=Path, help="the served contract from a file, not GET /contract"
    )
    parser.add_argument("--regenerate", action="store_true")
    args = parser.parse_args(argv)
    url = args.url.rstrip("/")
    try:
        contract = resolve_contract(url=url, contract_file=args.contract)
    except ContractUnavailable as exc:
        print(f"canary: cannot read the served contract: {exc}", file=sys.stderr)
        return 2
    if args.regenerate:
        golden = regenerate(url, contract)
        args.golden.write_text(json.dumps(golden, indent=2) + "\n")
        print(f"wrote {len(golden)} golden orders of the served contract to {args.golden}")
        return 0
    golden = json.loads(args.golden.read_text())
    refused = invalid_golden(contract, golden)
    if refused:
        print(
            f"canary: {args.golden} does not fit the contract {url} serves "
            f"({len(refused)} of {len(golden)} golden orders invalid):",
            file=sys.stderr,
        )
        for line in refused:
            print(f"  {line}", file=sys.stderr)
        print(
            "canary: write golden orders for this contract from a reference deployment: "
            "python deploy/canary/canary.py --url URL --regenerate --golden OTHER.json "
            "(then make canary GOLDEN=OTHER.json)",
            file=sys.stderr,
        )
        return 2
    print(f"canary: {len(golden)} golden orders -> {url}")
    problems = check(url, golden)
    for problem in problems:
        print(f"REGRESSION {problem}")
    print("CANARY: " + ("PASS" if not problems else f"FAIL ({len(problems)} problems)"))
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
