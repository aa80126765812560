"""Schemathesis against the live service's OpenAPI: every /v1 route, >= 1,000 cases each.

For each route Schemathesis generates, from the document the running server publishes at
``/docs.json`` (as published: no repair), and every answer, 2xx or 4xx, must conform to that
document -- a documented status, content type, headers and body schema (4xx: ``ErrorResponse``,
whose 400 ``detail`` lists pydantic's errors):

* **positive** cases (valid by the schema), ``FUZZ_POSITIVE_CASES`` (default 600) per route:
  never a 5xx; ``/v1/predict*`` must answer 200 (plus sanity: finite, lower <= point <= upper,
  one prediction per order); ``/v1/feedback`` answers 200, 404 (unknown id) or 409 (conflicting
  label) -- half of its cases carry the id of a real prediction, so joins and conflicts are
  exercised too;
* **negative** cases (invalid by the schema), ``FUZZ_NEGATIVE_CASES`` (default 400) per route:
  never a 5xx; a rejection is 400/413/415 (or 404: a well-formed feedback with an unknown id)
  whose body leaks no traceback or file path. A negative case the server *accepts* must be
  explained by pydantic's lax coercion (``true`` -> 1, ``"3.5"`` -> 3.5): the coerced body must
  be schema-valid, or the test fails. How many were coerced is reported. (``null`` for an optional
  entity average is no such case: the document says those are nullable.)

The tests before the fuzzing pin the document itself: valid OpenAPI 3.0, request bodies required,
every status a route answers documented, and the error bodies the server really sends (provoked
one by one) valid against the documented schema. They were contract defects of BentoML's
generated document found by this fuzzing, fixed by ``serving/server/middleware/openapi.py``.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from models.contract import default_contract
from tests.harness.local_server import LocalServer
from tests.reliability.conftest import KNOWN_ORDER, wait_until

pytestmark = pytest.mark.server

ROUTES = ("/v1/predict", "/v1/predict/batch", "/v1/feedback")
# 600 + 400 = the 1,000 cases a route is promised, in one file's CPU budget of `make test`
# (generating a case costs 3-13 ms of Hypothesis; 1,000 + 400 made this the suite's costliest file).
POSITIVE_CASES = int(os.environ.get("FUZZ_POSITIVE_CASES", "600"))
NEGATIVE_CASES = int(os.environ.get("FUZZ_NEGATIVE_CASES", "400"))
MIN_CASES_PER_ROUTE = 1000
ENTITY_FEATURES = default_contract().entity_features  # the session's model's contract
REJECTION_STATUSES = {400, 413, 415}
JSON_HEADERS = {"Content-Type": "application/json"}
# Fields pydantic validates in lax mode as numbers / the 0-1 literal (see _lax_equivalent).
NUMBER_FIELDS = {
    "distance_km",
    "order_value",
    "restaurant_avg_delivery_time",
    "driver_avg_delivery_time",
    "actual_delivery_time_min",
}
INTEGER_FIELDS = {"is_peak_hour"}
REPO = str(Path(__file__).resolve().parents[2])
LEAK = re.compile(
    rf'Traceback \(most recent call last\)|File "[^"]+", line \d+|site-packages/|{re.escape(REPO)}'
)
CONFORMANCE = [
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
FUZZ_SETTINGS: dict[str, Any] = {
    "deadline": None,
    "database": None,  # no .hypothesis/ directory in the work tree
    "suppress_health_check": [
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
    ],
}


# --------------------------------------------------------------------------- the document


def _openapi_30_validator(schema: dict[str, Any]) -> jsonschema.protocols.Validator:
    """A validator for an OpenAPI 3.0 schema: Draft 4 (its dialect) plus ``nullable``."""
    draft4_type = jsonschema.Draft4Validator.VALIDATORS["type"]

    def type_or_null(validator: Any, types: Any, instance: Any, schema: dict[str, Any]) -> Any:
        if instance is None and schema.get("nullable") is True:
            return
        yield from draft4_type(validator, types, instance, schema)

    extended = jsonschema.validators.extend(jsonschema.Draft4Validator, {"type": type_or_null})
    return extended(schema)


def _documented_validator(spec: dict[str, Any], path: str, status: int | None = None) -> Any:
    """The request body schema of ``path`` (``status`` None), or its response's for ``status``."""
    operation = spec["paths"][path]["post"]
    part = operation["requestBody"] if status is None else operation["responses"][str(status)]
    return _openapi_30_validator(
        {**part["content"]["application/json"]["schema"], "components": spec["components"]}
    )


@pytest.fixture(scope="module")
def published_openapi(server: LocalServer) -> dict[str, Any]:
    response = httpx.get(f"{server.url}/docs.json", timeout=10)
    assert response.status_code == 200
    spec: dict[str, Any] = response.json()
    assert set(ROUTES) <= set(spec["paths"]), "a /v1 route is missing from the document"
    return spec


@pytest.fixture(scope="module")
def api(published_openapi: dict[str, Any]) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_dict(published_openapi)


@pytest.fixture(scope="module")
def real_prediction_ids(server: LocalServer) -> list[str]:
    """Ids of real predictions, so fuzzed feedback also reaches the join (200) and 409 paths."""
    with httpx.Client(base_url=server.url, timeout=10) as client:
        ids = [
            client.post("/v1/predict", json={**KNOWN_ORDER, "distance_km": 1 + i}).json()[
                "prediction_id"
            ]
            for i in range(20)
        ]
    time.sleep(0.5)  # the prediction log is flushed every 100 ms
    return ids


# --------------------------------------------------------------------------- checks


def _lax_equivalent(body: Any) -> Any:
    """What pydantic's lax mode turns ``body`` into: bool/numeric strings -> numbers.
    Anything else is left as it is."""

    def number(value: Any, integer: bool) -> Any:
        if isinstance(value, bool):
            return int(value)
        if isinstance(value, str):
            try:
                parsed = float(value)
            except ValueError:
                return value
            if not math.isfinite(parsed):
                return value
            return int(parsed) if integer and parsed.is_integer() else parsed
        if integer and isinstance(value, float) and value.is_integer():
            return int(value)
        return value

    def fields(obj: Any) -> Any:
        if not isinstance(obj, dict):
            return obj
        out = {}
        for key, value in obj.items():
            if key in NUMBER_FIELDS or key in INTEGER_FIELDS:
                value = number(value, integer=key in INTEGER_FIELDS)
            out[key] = value
        return out

    body = fields(body)
    if isinstance(body, dict) and isinstance(body.get("orders"), list):
        body = {**body, "orders": [fields(order) for order in body["orders"]]}
    return body


def _assert_conforms(case: Any, response: Any) -> None:
    """The answer is documented: status, content type, headers, body (errors too), no leak."""
    case.validate_response(response, checks=CONFORMANCE)
    assert not LEAK.search(response.text), f"internal detail leaked: {response.text[:300]}"


def _assert_prediction(prediction: dict[str, Any], order: dict[str, Any]) -> None:
    point = prediction["predicted_delivery_time_min"]
    lower, upper = prediction["confidence_interval_lower"], prediction["confidence_interval_upper"]
    assert all(math.isfinite(x) for x in (point, lower, upper)), prediction
    assert lower <= point <= upper, prediction
    assert set(prediction["features_source"]) == set(ENTITY_FEATURES)
    for name in ENTITY_FEATURES:
        if order.get(name) is not None:
            assert prediction["features_source"][name] == "request", (order, prediction)


class RouteRun:
    """Counts of one route's fuzzing."""

    def __init__(self) -> None:
        self.cases: Counter[str] = Counter()
        self.statuses: Counter[str] = Counter()
        self.coerced = 0

    def record(self, mode: str, status: int) -> None:
        self.cases[mode] += 1
        self.statuses[f"{mode}:{status}"] += 1


def _fuzz(
    strategy: st.SearchStrategy[Any],
    max_examples: int,
    body: Callable[..., None],
    real_ids: list[str] | None = None,
) -> None:
    ids = st.sampled_from(real_ids) if real_ids else st.nothing()
    maybe_real = st.one_of(st.none(), ids)

    @settings(max_examples=max_examples, **FUZZ_SETTINGS)
    @given(case=strategy, real_id=maybe_real)
    def run(case: Any, real_id: str | None) -> None:
        body(case, real_id)

    run()


# --------------------------------------------------------------------------- the document itself


def test_document_is_valid_openapi_30(published_openapi: dict[str, Any]) -> None:
    """Was a finding: an ``openapi: 3.0.2`` document with JSON Schema 2020 bounds and nulls."""
    assert published_openapi["openapi"].startswith("3.0")
    schemathesis.openapi.from_dict(published_openapi).validate()


def test_request_bodies_are_required(published_openapi: dict[str, Any]) -> None:
    """Was a finding: without it, "valid" requests may come without a body."""
    for path in ROUTES:
        assert published_openapi["paths"][path]["post"]["requestBody"].get("required") is True


def test_every_status_a_route_answers_is_documented(published_openapi: dict[str, Any]) -> None:
    """Was a finding: 409/413/415/503 undocumented (and 404 documented where it never happens).
    Then issue #12 added 401 (feedback with a token), 503 on feedback (log store failing) and
    the edge's plain-text 408/414/431."""
    documented = {
        path: set(published_openapi["paths"][path]["post"]["responses"]) for path in ROUTES
    }
    edge = {"408", "414", "431"}
    assert documented == {
        "/v1/predict": {"200", "400", "413", "415", "500", "503"} | edge,
        "/v1/predict/batch": {"200", "400", "413", "415", "500", "503"} | edge,
        "/v1/feedback": {"200", "400", "401", "404", "409", "413", "415", "500", "503"} | edge,
    }
    for path in ROUTES:
        responses = published_openapi["paths"][path]["post"]["responses"]
        assert responses["503"]["headers"]["Retry-After"]["required"] is True
        for status in edge:
            assert set(responses[status]["content"]) == {"text/plain"}, (path, status)
    feedback_401 = published_openapi["paths"]["/v1/feedback"]["post"]["responses"]["401"]
    assert feedback_401["headers"]["WWW-Authenticate"]["required"] is True


def test_error_bodies_match_the_documented_schema(
    published_openapi: dict[str, Any], server: LocalServer
) -> None:
    """Was a finding: the 400 ``detail`` is a list of errors, documented as a string.

    Each error a client can cause, provoked on each route that answers it (503 needs an overload:
    tests/service/test_overload.py), is checked against the schema documented for its status.
    """
    too_large = json.dumps({"pad": "x" * 1_100_000})  # over the default 1 MiB
    text = {"Content-Type": "text/plain"}
    provoked: list[tuple[str, int, httpx.Response]] = []
    with httpx.Client(base_url=server.url, timeout=30) as client:
        # A prediction of its own: the fuzzing may have labelled the shared ones already.
        prediction_id = client.post("/v1/predict", json=KNOWN_ORDER).json()["prediction_id"]
        feedback = {"prediction_id": prediction_id, "actual_delivery_time_min": 30.0}
        invalid = {
            "/v1/predict": {**KNOWN_ORDER, "distance_km": 99},
            "/v1/predict/batch": {"orders": [KNOWN_ORDER, {**KNOWN_ORDER, "is_peak_hour": 2}]},
            "/v1/feedback": {**feedback, "actual_delivery_time_min": -1},
        }
        for path in ROUTES:
            provoked.append((path, 400, client.post(path, json=invalid[path])))
            provoked.append((path, 413, client.post(path, content=too_large, headers=JSON_HEADERS)))
            provoked.append((path, 415, client.post(path, content=b"x", headers=text)))
        many_errors = {"orders": [{**KNOWN_ORDER, "distance_km": 99}] * 12}
        provoked.append(
            ("/v1/predict/batch", 400, client.post("/v1/predict/batch", json=many_errors))
        )
        too_many_keys = {f"key_{i}": 1 for i in range(20)}
        provoked.append(("/v1/predict", 400, client.post("/v1/predict", json=too_many_keys)))
        unknown = {**feedback, "prediction_id": "00000000-0000-4000-8000-000000000000"}
        provoked.append(("/v1/feedback", 404, client.post("/v1/feedback", json=unknown)))
        # The prediction log is written in the background (every 100 ms): wait for the join.
        assert wait_until(
            lambda: client.post("/v1/feedback", json=feedback).status_code == 200, timeout_s=5
        )
        conflict = {**feedback, "actual_delivery_time_min": 31.0}
        provoked.append(("/v1/feedback", 409, client.post("/v1/feedback", json=conflict)))
    for path, status, response in provoked:
        assert response.status_code == status, (path, response.status_code, response.text)
        assert response.headers["content-type"].startswith("application/json"), (path, status)
        _documented_validator(published_openapi, path, status).validate(response.json())
    batch_400 = provoked[3][2].json()
    assert [error["loc"] for error in batch_400["detail"]] == [["orders", 1, "is_peak_hour"]]
    capped = provoked[9][2].json()  # the first 10 of 12 errors, and their count
    assert (len(capped["detail"]), capped["error_count"]) == (10, 12)


def test_booleans_and_numeric_strings_are_not_numbers(server: LocalServer) -> None:
    """Was a finding of the fuzzing (lax coercion); fixed with strict order validation."""
    wrong = {
        "order_value": False,
        "distance_km": "3.5",
        "is_peak_hour": "1",  # a boolean that takes true/false and 0/1, not text
        "driver_avg_delivery_time": True,
    }
    accepted = {}
    for field, value in wrong.items():
        response = httpx.post(f"{server.url}/v1/predict", json={**KNOWN_ORDER, field: value})
        if response.status_code != 400:
            accepted[field] = (value, response.status_code)
    assert not accepted, f"wrong JSON types accepted (lax coercion): {accepted}"


# --------------------------------------------------------------------------- the fuzz test


@pytest.mark.parametrize("path", ROUTES)
def test_fuzz_route(
    path: str,
    server: LocalServer,
    api: schemathesis.BaseSchema,
    published_openapi: dict[str, Any],
    real_prediction_ids: list[str],
    registered: Any,
    record_figure: Any,
) -> None:
    operation = api[path]["POST"]
    request_validator = _documented_validator(published_openapi, path)
    run = RouteRun()
    session = requests.Session()
    started = time.perf_counter()

    def call(case: Any) -> Any:
        return case.call(base_url=server.url, session=session, timeout=30)

    def positive(case: Any, real_id: str | None) -> None:
        if path == "/v1/feedback" and real_id is not None:
            case.body = {**case.body, "prediction_id": real_id}
        response = call(case)
        run.record("positive", response.status_code)
        assert response.status_code < 500, (case.body, response.text[:500])
        if path == "/v1/feedback":
            allowed = {200, 409} if real_id is not None else {404}
            assert response.status_code in allowed, (case.body, response.status_code, response.text)
        else:
            assert response.status_code == 200, (case.body, response.status_code, response.text)
        _assert_conforms(case, response)
        if response.status_code != 200:
            return
        answer = response.json()
        if path == "/v1/predict":
            assert answer["model_version"] == registered.tag
            _assert_prediction(answer, case.body)
        elif path == "/v1/predict/batch":
            assert len(answer["predictions"]) == len(case.body["orders"])
            for prediction, order in zip(answer["predictions"], case.body["orders"], strict=True):
                _assert_prediction(prediction, order)
        else:
            assert answer["prediction_id"] == real_id
            assert answer["status"] in ("joined", "duplicate")

    def negative(case: Any, _: str | None) -> None:
        response = call(case)
        run.record("negative", response.status_code)
        assert response.status_code < 500, (case.body, response.text[:500])
        _assert_conforms(case, response)
        if response.status_code in REJECTION_STATUSES or response.status_code == 404:
            return  # 404: a well-formed feedback body whose id is unknown
        assert response.status_code in (200, 409), (case.body, response.status_code)
        # Accepted although "invalid": only pydantic's lax coercion may explain that.
        coerced = _lax_equivalent(case.body)
        errors = [e.message for e in request_validator.iter_errors(coerced)]
        assert not errors, f"server accepted invalid input {case.body!r}: {errors}"
        run.coerced += 1

    _fuzz(
        operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
        POSITIVE_CASES,
        positive,
        real_prediction_ids if path == "/v1/feedback" else None,
    )
    _fuzz(operation.as_strategy(generation_mode=GenerationMode.NEGATIVE), NEGATIVE_CASES, negative)
    session.close()

    elapsed = time.perf_counter() - started
    total = sum(run.cases.values())
    record_figure(
        f"fuzz {path}",
        {
            "cases": total,
            **dict(run.cases),
            "accepted_by_lax_coercion": run.coerced,
            "statuses": dict(sorted(run.statuses.items())),
            "seconds": round(elapsed, 1),
        },
    )
    assert run.cases["positive"] >= POSITIVE_CASES
    if POSITIVE_CASES + NEGATIVE_CASES >= MIN_CASES_PER_ROUTE:
        assert total >= MIN_CASES_PER_ROUTE
    assert "Traceback" not in server.log()
