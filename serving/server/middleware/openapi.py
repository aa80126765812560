"""The published OpenAPI document: BentoML's generated one, corrected to match the real /v1 API.

BentoML 1.4 generates ``/docs.json`` from the API signatures, but

* labels it OpenAPI 3.0 while embedding pydantic's JSON Schema 2020 (``exclusiveMinimum: 0``,
  ``{"type": "null"}`` branches), which 3.0 does not allow;
* does not mark the request bodies required;
* documents 400/404/500 on every route with its own error schemas (400 ``detail``: string),
  while the 400 body carries the first 10 pydantic errors and their ``error_count``
  (``serving/telemetry/logs.py``), and the routes also answer 401 (``/v1/feedback`` with a
  token set: ``serving/server/middleware/auth.py``), 404/409 (feedback), 413/415 and the 400 of an
  oversized JSON object (``serving/server/middleware/body_guard.py``), 503 (``service.py``) and, before
  any route, 408/414/431 (``serving/server/edge/connection.py``).

* names the bodies after BentoML's wrappers (``OrderIODescriptor``, ``predict_batch__Input``)
  and keeps unused copies of them and of its own error schemas among the components;
* describes the service as BentoML's (title ``delivery_eta``, version "None", a description
  of BentoML badges and links) and leaves out the service's own routes (``/health``,
  ``/contract``).

BentoML has no hook to customise the document (bentoml/BentoML#2975), so
``OpenAPIDocumentMiddleware`` answers ``GET /docs.json`` with the generated document passed
once, at start-up, through ``v1_document``.
"""

from __future__ import annotations

import copy
import json
import logging
import re
from collections.abc import Callable, Mapping
from typing import Any

from serving.schema import MAX_LISTED_ERRORS
from serving.server.asgi import ASGIApp, Receive, Scope, Send

logger = logging.getLogger(__name__)

JSON = "application/json"
ERROR_SCHEMA = "ErrorResponse"
ERROR_REF = {"$ref": f"#/components/schemas/{ERROR_SCHEMA}"}

# The JSON body of every non-2xx answer of a /v1 route made by the service or BentoML: the
# service's own ({"error": str}) and BentoML's (400: the first MAX_LISTED_ERRORS pydantic errors,
# without input or context, and their count; 500: a fixed message). The HTTP edge's 408/414/431
# come before any route and are plain text (EDGE_STATUSES).
ERROR_RESPONSE: dict[str, Any] = {
    "title": ERROR_SCHEMA,
    "description": "An error. A validation 400 lists the first "
    f"{MAX_LISTED_ERRORS} errors in `detail` and their total in `error_count`.",
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {"type": "string", "description": "What went wrong."},
        "error_count": {
            "type": "integer",
            "minimum": 1,
            "description": "Validation 400 only: how many errors the request had in all "
            "(`detail` lists the first "
            f"{MAX_LISTED_ERRORS}).",
        },
        "detail": {
            "type": "array",
            "maxItems": MAX_LISTED_ERRORS,
            "description": f"Validation 400 only: the first {MAX_LISTED_ERRORS} errors, one "
            "entry per invalid field (location parts cut to 64 characters, messages to 200).",
            "items": {
                "type": "object",
                "required": ["type", "loc", "msg"],
                "properties": {
                    "type": {"type": "string", "example": "less_than_equal"},
                    "loc": {
                        "type": "array",
                        "description": "Path to the field (names and list indexes); "
                        "empty for the body itself.",
                        "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
                    },
                    "msg": {"type": "string"},
                    "url": {"type": "string", "description": "pydantic's page on the error"},
                },
            },
        },
    },
}

# 401, 404 and 409 are /v1/feedback's only.
STATUS_DESCRIPTIONS: dict[int, str] = {
    400: "Invalid request (missing, unknown or out-of-range fields, wrong JSON types, "
    f"malformed JSON): `detail` lists the first {MAX_LISTED_ERRORS} errors, `error_count` "
    "counts them all. A JSON object with more keys than the request has fields is refused "
    "before validation, with `error` only.",
    401: "Only when a token is configured (`DELIVERY_ETA_FEEDBACK_TOKEN`; unset, the route is "
    "open): the request lacks `Authorization: Bearer <token>` with that token. The same answer "
    'whatever was wrong: `{"error": "unauthorized"}`.',
    404: "Unknown `prediction_id` (expired, evicted, sampled out, never made, or not logged "
    "yet: retry).",
    408: "The request's headers or body did not arrive in time "
    "(`DELIVERY_ETA_HEADER_TIMEOUT_S`, `DELIVERY_ETA_BODY_TIMEOUT_S`); the connection is "
    "closed.",
    409: "The prediction already has a different `actual_delivery_time_min`.",
    413: "Request body over the size limit (`DELIVERY_ETA_MAX_BODY_BYTES`), whatever its "
    "framing; the connection is closed.",
    414: "Request target (path + query) over `DELIVERY_ETA_MAX_REQUEST_TARGET_BYTES`; the "
    "connection is closed.",
    415: "Content-Type is not `application/json`.",
    431: "Request line + headers over `DELIVERY_ETA_MAX_HEADER_BYTES`; the connection is closed.",
    500: "Unexpected server error (details in the server log only).",
    503: "Overloaded: the prediction queue is over its latency budget; retry later.",
}

# Where a route's answer means something else than STATUS_DESCRIPTIONS says.
ROUTE_STATUS_DESCRIPTIONS: dict[tuple[str, int], str] = {
    ("/v1/feedback", 503): "The prediction log's store is failing (SQLite locked or full, "
    "Redis down or slow): the prediction may still be queued, so the label is neither joined "
    "nor known to be unknown. Resend it after `Retry-After` seconds.",
}

# Answered by the HTTP edge before any route, in plain text, on a closed connection.
EDGE_STATUSES = frozenset({408, 414, 431})
TEXT = "text/plain"

RETRY_AFTER_HEADER: dict[str, Any] = {
    "description": "Seconds to wait before retrying.",
    "required": True,
    "schema": {"type": "integer", "minimum": 0},
}

WWW_AUTHENTICATE_HEADER: dict[str, Any] = {
    "description": 'The scheme to use: `Bearer realm="delivery-eta"`.',
    "required": True,
    "schema": {"type": "string"},
}

# The non-2xx statuses each /v1 route answers, replacing BentoML's generic 400/404/500.
V1_ERROR_STATUSES: dict[str, tuple[int, ...]] = {
    "/v1/predict": (400, 408, 413, 414, 415, 431, 500, 503),
    "/v1/predict/batch": (400, 408, 413, 414, 415, 431, 500, 503),
    "/v1/feedback": (400, 401, 404, 408, 409, 413, 414, 415, 431, 500, 503),
}

# Each /v1 route's request and 200-response body, by the name clients know them under (BentoML
# titles them ``<Model>IODescriptor`` and ``<method>__Input``).
V1_BODY_NAMES: dict[str, tuple[str, str]] = {
    "/v1/predict": ("Order", "Prediction"),
    "/v1/predict/batch": ("BatchRequest", "BatchPrediction"),
    "/v1/feedback": ("Feedback", "FeedbackReceipt"),
}

APP_TAG, INFRA_TAG = "Service APIs", "Infrastructure"
TAGS: list[dict[str, str]] = [
    {"name": APP_TAG, "description": "Delivery-time predictions and their labels (API v1)."},
    {"name": INFRA_TAG, "description": "Probes, health, metrics and the feature contract."},
]

HEALTH_SCHEMA = "Health"
HEALTH: dict[str, Any] = {
    "title": HEALTH_SCHEMA,
    "description": "The service's state; a failing feature store or prediction-log store makes "
    "it `degraded` (still serving), shutting down `draining`.",
    "type": "object",
    "required": ["status", "model_version", "feature_store", "prediction_log"],
    "properties": {
        "status": {"type": "string", "enum": ["ok", "degraded", "draining"]},
        "model_version": {"type": "string", "description": "The served model's store tag."},
        "model_stage": {"type": "string", "nullable": True},
        "shadow": {
            "type": "object",
            "nullable": True,
            "description": "The challenger scored off the response path, if any: its "
            "`model_version`, `fraction`, `queue_rows`, `queue_max_rows`.",
        },
        "uptime_s": {"type": "number"},
        "feature_store": {
            "type": "object",
            "description": "`backend` (embedded, redis) and `state`.",
        },
        "prediction_log": {
            "type": "object",
            "description": "`backend`, `state`, queue and size figures of the store labels "
            "are joined in.",
        },
    },
}

# The routes the service adds beside BentoML's (service.py), GET only.
SERVICE_ROUTES: dict[str, dict[str, Any]] = {
    "/health": {
        "get": {
            "tags": [INFRA_TAG],
            "description": "The service's state: served model, feature store, prediction log, "
            "shadow. Always 200 while the process serves; read `status`.",
            "responses": {
                "200": {
                    "description": "The state.",
                    "content": {
                        JSON: {"schema": {"$ref": f"#/components/schemas/{HEALTH_SCHEMA}"}}
                    },
                }
            },
        }
    },
    "/contract": {
        "get": {
            "tags": [INFRA_TAG],
            "description": "The served model's feature contract: the request fields, their "
            "kinds and bounds, and examples (docs/contract.md). Tools build bodies from it.",
            "responses": {
                "200": {
                    "description": "The contract.",
                    "content": {JSON: {"schema": {"type": "object"}}},
                }
            },
        }
    },
}

_NULL = {"type": "null"}
_REF = re.compile(r"#/components/schemas/([^\"/]+)")


def to_openapi_30(schema: Any) -> Any:
    """A copy of ``schema`` with pydantic's JSON Schema 2020 idioms rewritten in OpenAPI 3.0 form.

    * ``exclusiveMinimum: x`` -> ``minimum: x, exclusiveMinimum: true`` (same for maximum);
    * ``anyOf: [S, {"type": "null"}]`` -> ``S`` with ``nullable: true``;
    * ``default: null`` on a typed schema -> ``nullable: true``: BentoML flattens a request
      body's ``Optional`` fields to their first ``anyOf`` branch, losing the null the service
      accepts (3.0 also requires a default to be valid against its schema).

    Already-3.0 input comes back unchanged.
    """
    node = copy.deepcopy(schema)
    _rewrite(node)
    return node


def _rewrite(node: Any) -> None:
    if isinstance(node, list):
        for item in node:
            _rewrite(item)
        return
    if not isinstance(node, dict):
        return
    for value in node.values():
        _rewrite(value)  # children first: a merged anyOf branch is already rewritten
    for exclusive, inclusive in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        bound = node.get(exclusive)
        if isinstance(bound, int | float) and not isinstance(bound, bool):
            other = node.get(inclusive)
            minimum = exclusive == "exclusiveMinimum"
            # Both may be present in 2020 form; keep whichever is stricter.
            if other is None or (bound >= other if minimum else bound <= other):
                node[inclusive], node[exclusive] = bound, True
            else:
                del node[exclusive]
    for key in ("anyOf", "oneOf"):
        branches = node.get(key)
        if isinstance(branches, list) and _NULL in branches:
            rest = [branch for branch in branches if branch != _NULL]
            # 3.0 ignores nullable without a type (and anything beside a $ref), so only typed
            # branches can carry it; pydantic's Optional[<scalar>] fields are all typed.
            rest = [{**b, "nullable": True} if "type" in b else b for b in rest]
            if len(rest) == 1:
                del node[key]
                node.update({k: v for k, v in rest[0].items() if k not in node})
            else:
                node[key] = rest
    if "default" in node and node["default"] is None and "type" in node:
        node["nullable"] = True


def _error_response(path: str, status: int) -> dict[str, Any]:
    schema = {"type": "string"} if status in EDGE_STATUSES else copy.deepcopy(ERROR_REF)
    response: dict[str, Any] = {
        "description": ROUTE_STATUS_DESCRIPTIONS.get((path, status), STATUS_DESCRIPTIONS[status]),
        "content": {TEXT if status in EDGE_STATUSES else JSON: {"schema": schema}},
    }
    if status == 503:
        response["headers"] = {"Retry-After": copy.deepcopy(RETRY_AFTER_HEADER)}
    if status == 401:
        response["headers"] = {"WWW-Authenticate": copy.deepcopy(WWW_AUTHENTICATE_HEADER)}
    return response


def _name_body(schema: dict[str, Any], name: str, components: Mapping[str, Any]) -> None:
    """Title an inline body schema ``name``; describe it as the component of that name does
    (BentoML's copy drops the model's docstring), and take that component's fields: BentoML's
    copy keeps only the first ``anyOf`` branch of each (a boolean's "or 0/1" was lost)."""
    schema["title"] = name
    component = components.get(name, {})
    description = component.get("description")
    if description and "description" not in schema:
        schema["description"] = description
    fields = component.get("properties")
    if isinstance(fields, dict) and set(fields) == set(schema.get("properties", {})):
        schema["properties"] = copy.deepcopy(fields)


def _referenced(document: Mapping[str, Any]) -> set[str]:
    """Component schemas reachable from the document's paths."""
    schemas = document["components"]["schemas"]
    seen: set[str] = set()
    pending = set(_REF.findall(json.dumps(document["paths"])))
    while pending:
        name = pending.pop()
        if name in seen or name not in schemas:
            continue
        seen.add(name)
        pending |= set(_REF.findall(json.dumps(schemas[name])))
    return seen


def v1_document(
    spec: Mapping[str, Any],
    error_statuses: Mapping[str, tuple[int, ...]] = V1_ERROR_STATUSES,
    info: Mapping[str, Any] | None = None,
    body_names: Mapping[str, tuple[str, str]] = V1_BODY_NAMES,
) -> dict[str, Any]:
    """BentoML's generated document ``spec``, corrected (a new dict; ``spec`` is untouched).

    The whole document is rewritten in OpenAPI 3.0 form (``to_openapi_30``), each /v1 route's
    request body is marked required, and its error responses become exactly
    ``error_statuses[route]``, all with the ``ErrorResponse`` schema. Each /v1 route's request
    and 200 bodies are titled ``body_names[route]``; ``/health`` and ``/contract`` are added
    (``SERVICE_ROUTES``); components no path refers to are dropped; ``info`` (title, version,
    description) replaces BentoML's. Raises ``ValueError`` if the document's /v1 routes are not
    those of ``error_statuses`` and ``body_names``.
    """
    # A JSON round trip, as served: response codes are ints in BentoML's document object.
    document: dict[str, Any] = to_openapi_30(json.loads(json.dumps(spec)))
    routes = {path for path in document["paths"] if path.startswith("/v1/")}
    for documented in (error_statuses, body_names):
        if routes != set(documented):
            raise ValueError(f"/v1 routes {sorted(routes)} != documented {sorted(documented)}")
    if info is not None:
        document["info"] = dict(info)
    document["tags"] = copy.deepcopy(TAGS)
    # BentoML's `servers: [{"url": "."}]` shows as a one-entry "Servers: ." picker on the docs
    # page; without it, clients and Swagger UI use the document's own origin (the same URL).
    document.pop("servers", None)
    components = document["components"]["schemas"]
    components[ERROR_SCHEMA] = copy.deepcopy(ERROR_RESPONSE)
    components[HEALTH_SCHEMA] = copy.deepcopy(HEALTH)
    for path, statuses in error_statuses.items():
        operation = document["paths"][path]["post"]
        operation["requestBody"]["required"] = True
        request_name, response_name = body_names[path]
        _name_body(operation["requestBody"]["content"][JSON]["schema"], request_name, components)
        success = {code: r for code, r in operation["responses"].items() if code.startswith("2")}
        _name_body(success["200"]["content"][JSON]["schema"], response_name, components)
        operation["responses"] = {
            **success,
            **{str(status): _error_response(path, status) for status in sorted(statuses)},
        }
    document["paths"].update(copy.deepcopy(SERVICE_ROUTES))
    kept = _referenced(document)
    document["components"]["schemas"] = {k: v for k, v in components.items() if k in kept}
    return document


class OpenAPIDocumentMiddleware:
    """Answers ``GET path`` with ``v1_document(spec(), info=info())``, computed once when the
    app starts (``info`` is called then: the worker knows its bento version only after importing
    the service).

    Should the correction fail, ``path`` answers 500 (as BentoML's own view does when it cannot
    generate the document) and the API itself keeps serving.
    """

    def __init__(
        self,
        app: ASGIApp,
        spec: Callable[[], Mapping[str, Any]],
        path: str = "/docs.json",
        info: Callable[[], Mapping[str, Any]] | None = None,
    ) -> None:
        self.app = app
        self.path = path
        status, payload = 200, None
        try:
            payload = v1_document(spec(), info=info() if info is not None else None)
        except Exception:
            logger.exception("cannot build the OpenAPI document; %s answers 500", path)
            status, payload = 500, {"error": "Failed to generate OpenAPI spec"}
        self._status = status
        self._body = json.dumps(payload, separators=(",", ":")).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope.get("path") != self.path
            or scope.get("method") not in ("GET", "HEAD")
        ):
            await self.app(scope, receive, send)
            return
        await send(
            {
                "type": "http.response.start",
                "status": self._status,
                "headers": [
                    (b"content-type", JSON.encode()),
                    (b"content-length", str(len(self._body)).encode()),
                ],
            }
        )
        body = self._body if scope["method"] == "GET" else b""
        await send({"type": "http.response.body", "body": body})
