"""The OpenAPI correction (serving/server/middleware/openapi.py), on what BentoML really generates for these routes."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Annotated, Any

import bentoml
import httpx
import jsonschema
import pytest
import schemathesis
from pydantic import Field, TypeAdapter, ValidationError
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from models.contract import default_contract
from serving.schema import (
    BatchPrediction,
    FeedbackReceipt,
    Prediction,
    feedback_model,
    order_model,
)
from serving.server.middleware.docs_page import service_info
from serving.server.middleware.openapi import (
    EDGE_STATUSES,
    ERROR_RESPONSE,
    SERVICE_ROUTES,
    V1_BODY_NAMES,
    V1_ERROR_STATUSES,
    OpenAPIDocumentMiddleware,
    to_openapi_30,
    v1_document,
)
from serving.telemetry.logs import MAX_LISTED_ERRORS, validation_error_answer

Order = order_model(default_contract())
Feedback = feedback_model(default_contract())


# The /v1 routes of service.py with the same schemas (service.py itself needs a model to import).
@bentoml.service(name="openapi_probe")
class _Probe:
    @bentoml.api(route="/v1/predict", input_spec=Order, output_spec=Prediction)
    async def predict(self, **order: Any) -> Prediction:
        raise NotImplementedError

    @bentoml.api(route="/v1/predict/batch", output_spec=BatchPrediction)
    async def predict_batch(
        self, orders: Annotated[list[Order], Field(min_length=1, max_length=1000)]
    ) -> BatchPrediction:
        raise NotImplementedError

    @bentoml.api(route="/v1/feedback", input_spec=Feedback, output_spec=FeedbackReceipt)
    async def feedback(self, **body: Any) -> FeedbackReceipt:
        raise NotImplementedError


@pytest.fixture(scope="module")
def generated() -> dict[str, Any]:
    """BentoML's document, as its /docs.json view would serve it."""
    return json.loads(json.dumps(_Probe.openapi_spec.asdict()))


@pytest.fixture(scope="module")
def document(generated: dict[str, Any]) -> dict[str, Any]:
    return v1_document(generated)


def _validation_error_body(
    body: str, validate: Callable[[str], Any] = Order.model_validate_json
) -> dict[str, Any]:
    """The 400 body the service sends for a ValidationError: BentoML's shape
    (_bentoml_impl/server/app.py), bounded by ``validation_error_answer``."""
    with pytest.raises(ValidationError) as caught:
        validate(body)
    answer, _, _ = validation_error_answer(caught.value)
    return json.loads(answer)


# --------------------------------------------------------------------------- to_openapi_30


def test_exclusive_bounds_become_boolean_with_the_same_meaning() -> None:
    original = {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 10}
    converted = to_openapi_30(original)
    assert converted == {
        "type": "number",
        "minimum": 0,
        "exclusiveMinimum": True,
        "maximum": 10,
        "exclusiveMaximum": True,
    }
    before, after = jsonschema.Draft202012Validator(original), jsonschema.Draft4Validator(converted)
    for value in (-1, 0, 1e-9, 5, 10 - 1e-9, 10, 11):
        assert before.is_valid(value) == after.is_valid(value), value


def test_the_stricter_of_two_lower_bounds_is_kept() -> None:
    assert to_openapi_30({"minimum": 5, "exclusiveMinimum": 0}) == {"minimum": 5}
    assert to_openapi_30({"minimum": 0, "exclusiveMinimum": 5}) == {
        "minimum": 5,
        "exclusiveMinimum": True,
    }
    assert to_openapi_30({"maximum": 5, "exclusiveMaximum": 9}) == {"maximum": 5}


def test_a_null_branch_becomes_nullable() -> None:
    optional = {
        "anyOf": [{"type": "number", "exclusiveMinimum": 0}, {"type": "null"}],
        "default": None,
        "title": "Minutes",
    }
    assert to_openapi_30(optional) == {
        "type": "number",
        "minimum": 0,
        "exclusiveMinimum": True,
        "nullable": True,
        "default": None,
        "title": "Minutes",
    }
    union = {"anyOf": [{"type": "string"}, {"type": "integer"}, {"type": "null"}]}
    assert to_openapi_30(union) == {
        "anyOf": [{"type": "string", "nullable": True}, {"type": "integer", "nullable": True}]
    }


def test_a_null_default_makes_a_typed_schema_nullable() -> None:
    # What BentoML leaves of an Optional field when it flattens a request body.
    flattened = {"type": "number", "default": None}
    assert to_openapi_30(flattened) == {"type": "number", "default": None, "nullable": True}
    assert to_openapi_30({"type": "number", "default": 1}) == {"type": "number", "default": 1}


def test_conversions_are_idempotent_and_leave_their_input_alone(generated: dict[str, Any]) -> None:
    snapshot = json.dumps(generated, sort_keys=True)
    once = to_openapi_30(generated)
    assert to_openapi_30(once) == once
    v1_document(generated)
    assert json.dumps(generated, sort_keys=True) == snapshot


# --------------------------------------------------------------------------- v1_document


def test_bentoml_document_is_not_valid_openapi_30_but_the_corrected_one_is(
    generated: dict[str, Any], document: dict[str, Any]
) -> None:
    # If BentoML ever generates a valid document, part of serving/server/middleware/openapi.py may be dropped.
    with pytest.raises(Exception, match="exclusiveMinimum"):
        schemathesis.openapi.from_dict(generated).validate()
    assert document["openapi"].startswith("3.0")
    schemathesis.openapi.from_dict(document).validate()


def test_request_bodies_are_required(document: dict[str, Any]) -> None:
    for path in V1_ERROR_STATUSES:
        assert document["paths"][path]["post"]["requestBody"]["required"] is True, path


def test_each_route_documents_exactly_the_statuses_it_answers(document: dict[str, Any]) -> None:
    documented = {p: set(document["paths"][p]["post"]["responses"]) for p in V1_ERROR_STATUSES}
    edge = {"408", "414", "431"}
    assert documented == {
        "/v1/predict": {"200", "400", "413", "415", "500", "503"} | edge,
        "/v1/predict/batch": {"200", "400", "413", "415", "500", "503"} | edge,
        "/v1/feedback": {"200", "400", "401", "404", "409", "413", "415", "500", "503"} | edge,
    }


def test_error_responses_use_one_schema_and_503_says_when_to_retry(
    document: dict[str, Any], generated: dict[str, Any]
) -> None:
    for path, statuses in V1_ERROR_STATUSES.items():
        responses = document["paths"][path]["post"]["responses"]
        # The success answer is BentoML's, renamed (test_bodies_are_named_as_clients_know_them).
        success, original = (
            copy.deepcopy(r["200"])
            for r in (responses, to_openapi_30(generated["paths"][path]["post"]["responses"]))
        )
        for answer in (success, original):
            for key in ("title", "description"):
                answer["content"]["application/json"]["schema"].pop(key, None)
        assert success == original
        for status in statuses:
            content = responses[str(status)]["content"]
            if status in EDGE_STATUSES:  # the HTTP edge's plain-text answers
                assert content == {"text/plain": {"schema": {"type": "string"}}}
            else:
                assert content == {
                    "application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}
                }
            headers = set(responses[str(status)].get("headers", {}))
            expected = {503: {"Retry-After"}, 401: {"WWW-Authenticate"}}.get(status, set())
            assert headers == expected, (path, status)
        if 503 in statuses:
            assert responses["503"]["headers"]["Retry-After"]["required"] is True
    feedback = document["paths"]["/v1/feedback"]["post"]["responses"]
    assert "DELIVERY_ETA_FEEDBACK_TOKEN" in feedback["401"]["description"]
    assert "prediction log" in feedback["503"]["description"]
    assert document["components"]["schemas"]["ErrorResponse"] == ERROR_RESPONSE


def test_other_paths_keep_their_documentation(
    document: dict[str, Any], generated: dict[str, Any]
) -> None:
    # ... plus the service's own routes (test_service_routes_and_info_are_the_services).
    assert set(document["paths"]) == set(generated["paths"]) | set(SERVICE_ROUTES)
    for path in generated["paths"]:
        if not path.startswith("/v1/"):
            assert document["paths"][path] == to_openapi_30(generated["paths"][path])


def test_a_route_without_declared_statuses_is_refused(generated: dict[str, Any]) -> None:
    partial = {p: s for p, s in V1_ERROR_STATUSES.items() if p != "/v1/feedback"}
    with pytest.raises(ValueError, match="/v1/feedback"):
        v1_document(generated, partial)
    with pytest.raises(ValueError, match="/v1/gone"):
        v1_document(generated, {**V1_ERROR_STATUSES, "/v1/gone": (400,)})


# --------------------------------------------------------------------------- ErrorResponse


@pytest.mark.parametrize(
    "body",
    [
        '{"restaurant_id": "r_1", "driver_id": "d_1", "distance_km": 99, '
        '"is_peak_hour": 1, "order_value": 1}',
        "[1, 2]",
        '{"restaurant_id": ',
        "{}",
    ],
    ids=["out-of-range", "not-an-object", "malformed", "empty"],
)
def test_error_schema_accepts_bentoml_400_bodies(body: str) -> None:
    error = _validation_error_body(body)
    assert isinstance(error["detail"], list) and error["detail"]
    jsonschema.Draft4Validator(ERROR_RESPONSE).validate(error)


def test_error_schema_accepts_the_capped_400_of_many_errors() -> None:
    orders = [{"restaurant_id": "r", "driver_id": "d", "distance_km": 99}] * 12
    error = _validation_error_body(json.dumps(orders), TypeAdapter(list[Order]).validate_json)
    assert (len(error["detail"]), error["error_count"]) == (MAX_LISTED_ERRORS, 36)
    jsonschema.Draft4Validator(ERROR_RESPONSE).validate(error)


def test_error_schema_accepts_nested_locations_and_plain_errors() -> None:
    nested = {
        "error": "1 validation error in the request body",
        "detail": [
            {"type": "missing", "loc": ["orders", 3, "distance_km"], "msg": "Field required"}
        ],
    }
    for body in (nested, {"error": "request body over 1048576 bytes"}):
        jsonschema.Draft4Validator(ERROR_RESPONSE).validate(body)


@pytest.mark.parametrize(
    "body",
    [
        {"error": "x", "detail": "a string, as BentoML's InvalidArgument schema says"},
        {"detail": []},
        [{"error": "x"}],
        {"error": "x", "detail": [{"type": "missing", "loc": [1.5], "msg": "m"}]},
        {"error": "x", "detail": [{"type": "missing", "loc": [], "msg": "m"}] * 11},
        {"error": "x", "error_count": "11"},
    ],
)
def test_error_schema_rejects_other_shapes(body: Any) -> None:
    assert not jsonschema.Draft4Validator(ERROR_RESPONSE).is_valid(body)


# --------------------------------------------------------------------------- the middleware


def _app(spec: Any) -> httpx.AsyncClient:
    async def docs(_: Any) -> PlainTextResponse:
        return PlainTextResponse("BentoML's own document")

    inner = Starlette(
        routes=[Route("/docs.json", docs, methods=["GET", "POST"]), Route("/x", docs)]
    )
    app = OpenAPIDocumentMiddleware(inner, spec=spec)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


async def test_middleware_serves_the_corrected_document_built_once(
    generated: dict[str, Any], document: dict[str, Any]
) -> None:
    calls: list[int] = []

    def spec() -> dict[str, Any]:
        calls.append(1)
        return generated

    async with _app(spec) as client:
        for _ in range(3):
            response = await client.get("/docs.json")
            assert response.status_code == 200
            assert response.headers["content-type"] == "application/json"
            assert response.json() == document
        head = await client.head("/docs.json")
        assert head.status_code == 200 and head.content == b""
        assert head.headers["content-length"] == response.headers["content-length"]
        # Other paths and methods are not its business.
        assert (await client.get("/x")).text == "BentoML's own document"
        assert (await client.post("/docs.json")).text == "BentoML's own document"
    assert len(calls) == 1


async def test_a_failing_correction_only_costs_the_document(generated: dict[str, Any]) -> None:
    broken = {**generated, "paths": {**generated["paths"], "/v1/unknown": {}}}
    async with _app(lambda: broken) as client:
        response = await client.get("/docs.json")
        assert response.status_code == 500
        assert response.json() == {"error": "Failed to generate OpenAPI spec"}
        assert (await client.get("/x")).status_code == 200


def test_bodies_are_named_as_clients_know_them(document: dict[str, Any]) -> None:
    names = {}
    for path in V1_BODY_NAMES:
        operation = document["paths"][path]["post"]
        request = operation["requestBody"]["content"]["application/json"]["schema"]
        success = operation["responses"]["200"]["content"]["application/json"]["schema"]
        names[path] = (request["title"], success["title"])
    assert names == {
        "/v1/predict": ("Order", "Prediction"),
        "/v1/predict/batch": ("BatchRequest", "BatchPrediction"),
        "/v1/feedback": ("Feedback", "FeedbackReceipt"),
    }
    # No BentoML wrapper name anywhere; the order keeps its model's description.
    text = json.dumps(document)
    assert "IODescriptor" not in text and "__Input" not in text
    order = document["paths"]["/v1/predict"]["post"]["requestBody"]["content"]
    assert order["application/json"]["schema"]["description"] == Order.__doc__
    # Its fields are the model's: is_peak_hour takes a boolean or 0/1, not only a boolean.
    fields = order["application/json"]["schema"]["properties"]
    assert fields == document["components"]["schemas"]["Order"]["properties"]
    assert {"type": "boolean"} in fields["is_peak_hour"]["anyOf"]


def test_no_servers_entry_clients_use_the_documents_origin(
    generated: dict[str, Any], document: dict[str, Any]
) -> None:
    assert "servers" in generated  # BentoML's [{"url": "."}]: a "Servers: ." picker on the page
    assert "servers" not in document


def test_only_referenced_schemas_are_kept(document: dict[str, Any]) -> None:
    # BentoML's error schemas and its unused wrapper copies are gone; what paths use stays.
    assert set(document["components"]["schemas"]) == {
        "Order",
        "Prediction",
        "ErrorResponse",
        "Health",
    }


def test_service_routes_and_info_are_the_services(generated: dict[str, Any]) -> None:
    info = service_info("delivery_eta:abc", "not available")
    document = v1_document(generated, info=info)
    assert document["info"] == info
    assert info["title"] == "delivery-eta"
    assert info["version"] == "1 (model delivery_eta:abc, build dev)"
    assert "BentoML" not in json.dumps(document["info"]) + json.dumps(document["tags"])
    assert "![" not in info["description"] and "http" not in info["description"]
    for path in ("/health", "/contract", "/livez", "/readyz", "/metrics"):
        assert "200" in document["paths"][path]["get"]["responses"], path
    health = document["paths"]["/health"]["get"]["responses"]["200"]["content"]
    assert health["application/json"]["schema"] == {"$ref": "#/components/schemas/Health"}
    assert service_info("t", "20261207abc")["version"] == "1 (model t, build 20261207abc)"


def test_a_route_without_body_names_is_refused(generated: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="documented"):
        v1_document(generated, body_names={"/v1/predict": ("Order", "Prediction")})
