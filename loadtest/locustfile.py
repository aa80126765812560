"""Locust user mix for delivery-eta: what an ordering front-end and a dispatch back-office send.

Per task pick (weights below): single predictions of realistic random orders (known entity ids
and ~10 % unknown ones, a few with request-side feature overrides), batch calls of 10-500
orders, health checks, and ~2 % invalid payloads that MUST be refused with a 4xx (a 400 that
names the field the payload breaks). A refused invalid payload is a success; a 2xx or 5xx
answer to one is a failure. Every request is named for the stats (``NAME_*`` below), so the CSV
has one row per kind.

The bodies come from the service's own feature contract: read from the host's
``GET /contract`` when the first user starts (``LOADTEST_CONTRACT=file.yaml`` instead), built
by ``models.contract.bodies``; known entity ids are the served model's, from this machine's
model store when it holds it (else ids derived from the contract's examples).

Run through ``make loadtest`` (headless, CSV + HTML, SLO verdict) or directly:

    locust -f loadtest/locustfile.py --headless -u 100 -r 20 -t 60s --host http://127.0.0.1:3000

Think time per user: ``LOADTEST_WAIT="min,max"`` seconds (default ``0.5,1.5``; ``0,0`` is a
closed loop that saturates the service). Only loopback hosts are accepted.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from locust import FastHttpUser, between, events, task

from loadtest.slo import INVALID_PREFIX, is_loopback_url
from models.contract import FeatureContract
from models.contract.bodies import OrderGenerator
from models.contract.invalid_bodies import (
    InvalidVariant,
    invalid_batch_variants,
    invalid_predict_variants,
)
from models.served_contract import ContractUnavailable, load_ids, resolve_contract

BATCH_ROWS = (10, 500)
INVALID_SINGLE_SHARE = 0.8
"""Of the invalid payloads, the share sent to /v1/predict (the rest to the batch route)."""

NAME_PREDICT = "POST /v1/predict"
NAME_BATCH = "POST /v1/predict/batch"
NAME_HEALTH = "GET /health"
NAME_INVALID_PREDICT = f"{INVALID_PREFIX} POST /v1/predict"
NAME_INVALID_BATCH = f"{INVALID_PREFIX} POST /v1/predict/batch"

# Task weights (out of 100): invalid payloads are 2 % of all requests.
WEIGHT_PREDICT, WEIGHT_BATCH, WEIGHT_HEALTH, WEIGHT_INVALID = 86, 4, 8, 2

JSON_HEADERS = {"Content-Type": "application/json"}


# ----------------------------------------------------------------------------- payloads


@dataclass(frozen=True)
class InvalidRequest:
    """One invalid request: where it goes, its stats name, and what it breaks."""

    path: str
    name: str
    kind: str
    field: str | None
    field_named: bool
    body: bytes
    content_type: str


@dataclass(frozen=True)
class Mix:
    """The payloads of one contract: valid orders and batches, invalid requests."""

    contract: FeatureContract
    known_ids: Mapping[str, Sequence[str]] | None = None
    generator: OrderGenerator = field(init=False)
    invalid_predict: list[InvalidVariant] = field(init=False)
    invalid_batch: list[InvalidVariant] = field(init=False)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "generator", OrderGenerator(self.contract, self.known_ids))
        set_(self, "invalid_predict", invalid_predict_variants(self.contract))
        set_(self, "invalid_batch", invalid_batch_variants(self.contract))

    def random_order(self, rng: random.Random) -> dict[str, Any]:
        """A plausible order (``OrderGenerator``: every field's range, known and unknown ids,
        a few overrides)."""
        return self.generator.order(rng)

    def random_batch(self, rng: random.Random) -> list[dict[str, Any]]:
        """10 to 500 random orders."""
        return self.generator.orders(rng, rng.randint(*BATCH_ROWS))

    def invalid_request(self, rng: random.Random) -> InvalidRequest:
        """One invalid request; 4 in 5 are single."""
        single = rng.random() < INVALID_SINGLE_SHARE
        variants = self.invalid_predict if single else self.invalid_batch
        variant = variants[rng.randrange(len(variants))]
        orders = self.generator.orders(rng, 21)
        path, name = (
            ("/v1/predict", NAME_INVALID_PREDICT)
            if single
            else ("/v1/predict/batch", NAME_INVALID_BATCH)
        )
        return InvalidRequest(
            path,
            name,
            variant.kind,
            variant.field,
            variant.field_named,
            variant.body(orders, rng),
            variant.content_type,
        )


_MIX: Mix | None = None


def mix_for(host: str) -> Mix:
    """The payload mix of the contract ``host`` serves (``LOADTEST_CONTRACT`` overrides it);
    read once per locust process."""
    global _MIX
    if _MIX is None:
        contract_file = os.environ.get("LOADTEST_CONTRACT") or None
        contract = resolve_contract(url=host, contract_file=contract_file)
        _MIX = Mix(contract, load_ids(host, contract))
    return _MIX


def _dump(payload: Any) -> bytes:
    return json.dumps(payload).encode()


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
    if host:
        try:  # fail at start, not in every user, when the contract cannot be read
            mix_for(host)
        except ContractUnavailable as exc:
            raise SystemExit(f"cannot build the payloads: {exc}") from None


def _what_failed(response: Any) -> str:
    """A failure's line: the status and the start of the body, or -- when no answer came
    (status 0) -- the connection error locust caught, so a reset is told from a timeout."""
    if not response.status_code:
        return f"no answer: {getattr(response, 'error', None)!r}"[:200]
    return f"HTTP {response.status_code}: {(response.text or '')[:120]}"


class DeliveryEtaClient(FastHttpUser):
    """One client of the service; see the module docstring for the mix."""

    wait_time = between(*think_time())

    def on_start(self) -> None:
        self.rng = random.Random()
        self.mix = mix_for(self.host or "")

    @task(WEIGHT_PREDICT)
    def predict(self) -> None:
        with self.client.post(
            "/v1/predict",
            data=_dump(self.mix.random_order(self.rng)),
            headers=JSON_HEADERS,
            name=NAME_PREDICT,
            catch_response=True,
        ) as response:
            if response.status_code != 200:
                response.failure(_what_failed(response))
            elif b'"predicted_delivery_time_min"' not in (response.content or b""):
                response.failure("200 without a prediction")
            else:
                response.success()

    @task(WEIGHT_BATCH)
    def predict_batch(self) -> None:
        orders = self.mix.random_batch(self.rng)
        with self.client.post(
            "/v1/predict/batch",
            data=_dump({"orders": orders}),
            headers=JSON_HEADERS,
            name=NAME_BATCH,
            catch_response=True,
        ) as response:
            if response.status_code != 200:
                response.failure(_what_failed(response))
            elif (response.content or b"").count(b'"prediction_id"') != len(orders):
                response.failure(f"200 without {len(orders)} predictions")
            else:
                response.success()

    @task(WEIGHT_HEALTH)
    def health(self) -> None:
        with self.client.get("/health", name=NAME_HEALTH, catch_response=True) as response:
            if response.status_code != 200:
                response.failure(_what_failed(response))
            else:
                response.success()

    @task(WEIGHT_INVALID)
    def invalid(self) -> None:
        bad = self.mix.invalid_request(self.rng)
        with self.client.post(
            bad.path,
            data=bad.body,
            headers={"Content-Type": bad.content_type},
            name=bad.name,
            catch_response=True,
        ) as response:
            status = response.status_code
            if not 400 <= status < 500:
                response.failure(f"invalid payload ({bad.kind}) answered HTTP {status}")
            elif (
                status == 400
                and bad.field
                and bad.field_named
                and bad.field not in (response.text or "")
            ):
                response.failure(f"invalid payload ({bad.kind}): the 400 does not name {bad.field}")
            else:
                response.success()  # refused, as it must be
