"""Locust user mix for delivery-eta: what an ordering front-end and a dispatch back-office send.

Per task pick (weights below): single predictions of realistic random orders (known entity ids
and ~10 % unknown ones, a few with request-side feature overrides), batch calls of 10-500
orders, health checks, and ~2 % invalid payloads that MUST be refused with a 4xx. A refused
invalid payload is a success; a 2xx or 5xx answer to one is a failure. Every request is named
for the stats (``NAME_*`` below), so the CSV has one row per kind.

Run through ``make loadtest`` (headless, CSV + HTML, SLO verdict) or directly:

    locust -f loadtest/locustfile.py --headless -u 100 -r 20 -t 60s --host http://127.0.0.1:3000

Think time per user: ``LOADTEST_WAIT="min,max"`` seconds (default ``0.5,1.5``; ``0,0`` is a
closed loop that saturates the service). Only loopback hosts are accepted.
"""

from __future__ import annotations

import json
import os
import random
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from locust import FastHttpUser, between, events, task

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from loadtest.slo import INVALID_PREFIX, is_loopback_url

KNOWN_RESTAURANTS = 300  # r_0000 .. r_0299 are in the feature store
KNOWN_DRIVERS = 800  # d_0000 .. d_0799
UNKNOWN_SHARE = 0.10
OVERRIDE_SHARE = 0.05  # orders that send their own entity averages
BATCH_ROWS = (10, 500)

NAME_PREDICT = "POST /v1/predict"
NAME_BATCH = "POST /v1/predict/batch"
NAME_HEALTH = "GET /health"
NAME_INVALID_PREDICT = f"{INVALID_PREFIX} POST /v1/predict"
NAME_INVALID_BATCH = f"{INVALID_PREFIX} POST /v1/predict/batch"

# Task weights (out of 100): invalid payloads are 2 % of all requests.
WEIGHT_PREDICT, WEIGHT_BATCH, WEIGHT_HEALTH, WEIGHT_INVALID = 86, 4, 8, 2

JSON_HEADERS = {"Content-Type": "application/json"}


# ----------------------------------------------------------------------------- payloads


def entity_id(rng: random.Random, prefix: str, known: int) -> str:
    """A known id (``r_0042``) or, ~10 % of the time, one the store has never seen."""
    if rng.random() < UNKNOWN_SHARE:
        return f"{prefix}_new_{rng.randrange(1_000_000)}"
    return f"{prefix}_{rng.randrange(known):04d}"


def random_order(rng: random.Random) -> dict[str, Any]:
    """A plausible order: mostly short trips, a third at peak hour, a long-tailed basket."""
    order: dict[str, Any] = {
        "restaurant_id": entity_id(rng, "r", KNOWN_RESTAURANTS),
        "driver_id": entity_id(rng, "d", KNOWN_DRIVERS),
        "distance_km": round(min(max(rng.lognormvariate(1.1, 0.6), 0.1), 50.0), 2),
        "is_peak_hour": 1 if rng.random() < 0.35 else 0,
        "order_value": round(min(rng.lognormvariate(3.3, 0.5), 100_000.0), 2),
    }
    if rng.random() < OVERRIDE_SHARE:
        order["restaurant_avg_delivery_time"] = round(rng.uniform(15, 60), 1)
    if rng.random() < OVERRIDE_SHARE:
        order["driver_avg_delivery_time"] = round(rng.uniform(15, 60), 1)
    return order


def random_batch(rng: random.Random) -> list[dict[str, Any]]:
    return [random_order(rng) for _ in range(rng.randint(*BATCH_ROWS))]


def _dump(payload: Any) -> bytes:
    return json.dumps(payload).encode()


def _set(field: str, value: Any) -> Callable[[random.Random], bytes]:
    def build(rng: random.Random) -> bytes:
        return _dump({**random_order(rng), field: value})

    return build


def _without(field: str) -> Callable[[random.Random], bytes]:
    def build(rng: random.Random) -> bytes:
        order = random_order(rng)
        order.pop(field)
        return _dump(order)

    return build


# (kind, body builder, content type) for /v1/predict; every one must be refused with a 4xx.
INVALID_PREDICT: list[tuple[str, Callable[[random.Random], bytes], str]] = [
    ("distance too far", _set("distance_km", 99), "application/json"),
    ("distance zero", _set("distance_km", 0), "application/json"),
    ("negative order value", _set("order_value", -5), "application/json"),
    ("peak hour 2", _set("is_peak_hour", 2), "application/json"),
    ("peak hour as text", _set("is_peak_hour", "yes"), "application/json"),
    ("distance as text", _set("distance_km", "far"), "application/json"),
    ("missing driver", _without("driver_id"), "application/json"),
    ("missing distance", _without("distance_km"), "application/json"),
    ("unknown field", _set("tip", 3), "application/json"),
    ("bad id characters", _set("restaurant_id", "r 42; DROP"), "application/json"),
    ("id too long", _set("driver_id", "d" * 65), "application/json"),
    ("override out of range", _set("driver_avg_delivery_time", 301), "application/json"),
    ("override zero", _set("restaurant_avg_delivery_time", 0), "application/json"),
    ("NaN distance", _set("distance_km", float("nan")), "application/json"),  # json: NaN
    ("Infinity order value", _set("order_value", float("inf")), "application/json"),
    ("truncated JSON", lambda rng: _dump(random_order(rng))[:-7], "application/json"),
    ("JSON list", lambda rng: _dump([random_order(rng)]), "application/json"),
    ("empty body", lambda rng: b"", "application/json"),
    ("not JSON", lambda rng: b"restaurant_id=r_0001&driver_id=d_0001", "text/plain"),
]

# ... and for /v1/predict/batch.
INVALID_BATCH: list[tuple[str, Callable[[random.Random], bytes], str]] = [
    ("no orders", lambda rng: _dump({"orders": []}), "application/json"),
    ("orders not a list", lambda rng: _dump({"orders": random_order(rng)}), "application/json"),
    (
        "one bad order in the batch",
        lambda rng: _dump(
            {"orders": [*random_batch(rng)[:20], {**random_order(rng), "distance_km": -1}]}
        ),
        "application/json",
    ),
    (
        "too many orders",
        lambda rng: _dump({"orders": [random_order(rng)] * 1001}),
        "application/json",
    ),
    ("bare order, no envelope", lambda rng: _dump(random_order(rng)), "application/json"),
]


def invalid_request(rng: random.Random) -> tuple[str, str, str, bytes, str]:
    """(path, stats name, kind, body, content type) of one invalid request; 4 in 5 are single."""
    if rng.random() < 0.8:
        kind, build, content_type = rng.choice(INVALID_PREDICT)
        return "/v1/predict", NAME_INVALID_PREDICT, kind, build(rng), content_type
    kind, build, content_type = rng.choice(INVALID_BATCH)
    return "/v1/predict/batch", NAME_INVALID_BATCH, kind, build(rng), content_type


def think_time() -> tuple[float, float]:
    low, _, high = os.environ.get("LOADTEST_WAIT", "0.5,1.5").partition(",")
    return float(low), float(high or low)


# ----------------------------------------------------------------------------- locust


@events.init.add_listener
def _loopback_only(environment: Any, **_: Any) -> None:
    host = environment.host or ""
    if host and not is_loopback_url(host):
        raise SystemExit(
            f"refusing to load {host}: loopback hosts only (127.0.0.0/8, localhost, [::1])"
        )


class DeliveryEtaClient(FastHttpUser):
    """One client of the service; see the module docstring for the mix."""

    wait_time = between(*think_time())

    def on_start(self) -> None:
        self.rng = random.Random()

    @task(WEIGHT_PREDICT)
    def predict(self) -> None:
        with self.client.post(
            "/v1/predict",
            data=_dump(random_order(self.rng)),
            headers=JSON_HEADERS,
            name=NAME_PREDICT,
            catch_response=True,
        ) as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}: {(response.text or '')[:120]}")
            elif b'"predicted_delivery_time_min"' not in (response.content or b""):
                response.failure("200 without a prediction")
            else:
                response.success()

    @task(WEIGHT_BATCH)
    def predict_batch(self) -> None:
        orders = random_batch(self.rng)
        with self.client.post(
            "/v1/predict/batch",
            data=_dump({"orders": orders}),
            headers=JSON_HEADERS,
            name=NAME_BATCH,
            catch_response=True,
        ) as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}: {(response.text or '')[:120]}")
            elif (response.content or b"").count(b'"prediction_id"') != len(orders):
                response.failure(f"200 without {len(orders)} predictions")
            else:
                response.success()

    @task(WEIGHT_HEALTH)
    def health(self) -> None:
        with self.client.get("/health", name=NAME_HEALTH, catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}")
            else:
                response.success()

    @task(WEIGHT_INVALID)
    def invalid(self) -> None:
        path, name, kind, body, content_type = invalid_request(self.rng)
        with self.client.post(
            path,
            data=body,
            headers={"Content-Type": content_type},
            name=name,
            catch_response=True,
        ) as response:
            if 400 <= response.status_code < 500:
                response.success()  # refused, as it must be
            else:
                response.failure(f"invalid payload ({kind}) answered HTTP {response.status_code}")
