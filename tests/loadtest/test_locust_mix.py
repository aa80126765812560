"""The locustfile's payloads, checked against the API schema (no server).

Importing locust monkey-patches the whole process with gevent, so the check runs in a child
interpreter.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]

CHECK = r"""
import json, random
from typing import Annotated
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from loadtest import locustfile as lf
from loadtest.slo import INVALID_PREFIX
from serving.schema import Order

class Batch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    orders: Annotated[list[Order], Field(min_length=1, max_length=1000)]

def valid(model, body):
    try:
        model.model_validate_json(body)
        return True
    except ValidationError:
        return False

rng = random.Random(7)
orders = [lf.random_order(rng) for _ in range(5000)]
batches = [lf.random_batch(rng) for _ in range(50)]
invalid = {}
for kind, build, content_type in lf.INVALID_PREDICT:
    # A non-JSON content type is refused (415) whatever the body says.
    invalid[f"predict: {kind}"] = content_type == "application/json" and valid(Order, build(rng))
for kind, build, content_type in lf.INVALID_BATCH:
    invalid[f"batch: {kind}"] = content_type == "application/json" and valid(Batch, build(rng))
picked = [lf.invalid_request(rng) for _ in range(2000)]
weights = (lf.WEIGHT_PREDICT, lf.WEIGHT_BATCH, lf.WEIGHT_HEALTH, lf.WEIGHT_INVALID)
print(json.dumps({
    "valid_orders": sum(valid(Order, json.dumps(o)) for o in orders),
    "unknown_restaurants": sum("_new_" in o["restaurant_id"] for o in orders),
    "unknown_drivers": sum("_new_" in o["driver_id"] for o in orders),
    "valid_batches": sum(valid(Batch, json.dumps({"orders": b})) for b in batches),
    "batch_sizes": [min(len(b) for b in batches), max(len(b) for b in batches)],
    "accepted_invalid": [k for k, accepted in invalid.items() if accepted],
    "invalid_kinds": len(invalid),
    "invalid_names": sorted({name for _, name, *_ in picked}),
    "invalid_prefix": INVALID_PREFIX,
    "invalid_share": lf.WEIGHT_INVALID / sum(weights),
    "names": [lf.NAME_PREDICT, lf.NAME_BATCH, lf.NAME_HEALTH],
    "user_tasks": len(lf.DeliveryEtaClient.tasks),
}))
"""


def run_check() -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", CHECK], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_locust_mix_payloads() -> None:
    result = run_check()
    # Realistic orders all pass the API's validation; ~10 % of ids are unknown to the store.
    assert result["valid_orders"] == 5000
    assert 350 <= result["unknown_restaurants"] <= 650
    assert 350 <= result["unknown_drivers"] <= 650
    assert result["valid_batches"] == 50
    assert result["batch_sizes"][0] >= 10 and result["batch_sizes"][1] <= 500
    # Every invalid payload is one the API must refuse (4xx).
    assert result["accepted_invalid"] == []
    assert result["invalid_kinds"] >= 20
    # Invalid payloads are ~2 % of requests and carry the name slo.py recognises.
    assert result["invalid_share"] == 0.02
    assert all(name.startswith(result["invalid_prefix"]) for name in result["invalid_names"])
    assert len(result["invalid_names"]) == 2
    assert not any(name.startswith(result["invalid_prefix"]) for name in result["names"])
    assert result["user_tasks"] == 100  # locust expands weights into the task list
