"""Golden requests: send checked-in orders to a deployed service and check every answer.

    python deploy/canary/canary.py --url http://127.0.0.1:3000          # exit 1 on any regression
    python deploy/canary/canary.py --url ... --regenerate               # rewrite expected ranges

Each golden order carries its entity averages, so the expected range depends only on the model's
function of the features -- not on which entity snapshot a deployment holds. Ranges are the
reference model's prediction +- max(3 min, 12 %): a new model that moves a typical order by
more than that is a regression worth a human look before it takes traffic.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import httpx

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
SEED_ORDERS: list[dict[str, Any]] = [
    {
        "name": "short off-peak, quick kitchen",
        "distance_km": 1.2,
        "is_peak_hour": 0,
        "order_value": 18.0,
        "restaurant_avg_delivery_time": 24.0,
        "driver_avg_delivery_time": 26.0,
    },
    {
        "name": "typical dinner peak",
        "distance_km": 3.5,
        "is_peak_hour": 1,
        "order_value": 32.0,
        "restaurant_avg_delivery_time": 33.0,
        "driver_avg_delivery_time": 33.0,
    },
    {
        "name": "long distance, slow driver",
        "distance_km": 9.0,
        "is_peak_hour": 0,
        "order_value": 40.0,
        "restaurant_avg_delivery_time": 30.0,
        "driver_avg_delivery_time": 42.0,
    },
    {
        "name": "big order, slow kitchen, peak",
        "distance_km": 2.5,
        "is_peak_hour": 1,
        "order_value": 180.0,
        "restaurant_avg_delivery_time": 45.0,
        "driver_avg_delivery_time": 31.0,
    },
    {
        "name": "far and peak",
        "distance_km": 14.0,
        "is_peak_hour": 1,
        "order_value": 25.0,
        "restaurant_avg_delivery_time": 34.0,
        "driver_avg_delivery_time": 35.0,
    },
]


def _order(golden: dict[str, Any]) -> dict[str, Any]:
    body = {k: v for k, v in golden.items() if k not in ("name", "expected_min", "expected_max")}
    return {"restaurant_id": "canary_r", "driver_id": "canary_d", **body}


def check(url: str, golden: list[dict[str, Any]]) -> list[str]:
    """Problems found (empty when every answer has the schema and lies in its range)."""
    problems = []
    with httpx.Client(base_url=url, timeout=10) as client:
        for case in golden:
            response = client.post("/v1/predict", json=_order(case))
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
        batch = client.post("/v1/predict/batch", json={"orders": [_order(c) for c in golden]})
        if batch.status_code != 200 or len(batch.json().get("predictions", [])) != len(golden):
            problems.append(f"batch: HTTP {batch.status_code}")
    return problems


def regenerate(url: str) -> list[dict[str, Any]]:
    """Expected ranges from the service at ``url`` (the reference model)."""
    golden = []
    with httpx.Client(base_url=url, timeout=10) as client:
        for seed in SEED_ORDERS:
            point = (
                client.post("/v1/predict", json=_order(seed))
                .raise_for_status()
                .json()["predicted_delivery_time_min"]
            )
            margin = max(3.0, 0.12 * point)
            golden.append(
                {
                    **seed,
                    "expected_min": round(point - margin, 1),
                    "expected_max": round(point + margin, 1),
                }
            )
    return golden


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", required=True)
    parser.add_argument("--golden", type=Path, default=GOLDEN)
    parser.add_argument("--regenerate", action="store_true")
    args = parser.parse_args()
    if args.regenerate:
        args.golden.write_text(json.dumps(regenerate(args.url), indent=2) + "\n")
        print(f"wrote {args.golden}")
        return 0
    golden = json.loads(args.golden.read_text())
    print(f"canary: {len(golden)} golden orders -> {args.url}")
    problems = check(args.url.rstrip("/"), golden)
    for problem in problems:
        print(f"REGRESSION {problem}")
    print("CANARY: " + ("PASS" if not problems else f"FAIL ({len(problems)} problems)"))
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
