"""The published OpenAPI document: BentoML's generated one, corrected to match the real /v1 API.

BentoML 1.4 generates ``/docs.json`` from the API signatures, but

* labels it OpenAPI 3.0 while embedding pydantic's JSON Schema 2020 (``exclusiveMinimum: 0``,
  ``{"type": "null"}`` branches), which 3.0 does not allow;
* does not mark the request bodies required;
* documents 400/404/500 on every route with its own error schemas (400 ``detail``: string),
  while the 400 body carries a list of pydantic errors, and the routes also answer
  404/409/413/415/503 (``service.py``, ``serving/middleware/body_guard.py``).

BentoML has no hook to customise the document (bentoml/BentoML#2975), so
``OpenAPIDocumentMiddleware`` answers ``GET /docs.json`` with the generated document passed
once, at start-up, through ``v1_document``.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

from serving.middleware.asgi import ASGIApp, Receive, Scope, Send

logger = logging.getLogger(__name__)

JSON = "application/json"
ERROR_SCHEMA = "ErrorResponse"
ERROR_REF = {"$ref": f"#/components/schemas/{ERROR_SCHEMA}"}

# The body of every non-2xx answer of a /v1 route: the service's own ({"error": str}) and
# BentoML's (400: pydantic errors, without input or context; 500: a fixed message).
ERROR_RESPONSE: dict[str, Any] = {
    "title": ERROR_SCHEMA,
    "description": "An error; `detail` (400 only) names each invalid field.",
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {"type": "string", "description": "What went wrong."},
        "detail": {
            "type": "array",
            "description": "400 only: one entry per invalid field.",
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

# 404 and 409 are /v1/feedback's only.
STATUS_DESCRIPTIONS: dict[int, str] = {
    400: "Invalid request (missing, unknown or out-of-range fields, wrong JSON types, "
    "malformed JSON); `detail` lists each invalid field.",
    404: "Unknown `prediction_id` (expired, never made, or not logged yet: retry).",
    409: "The prediction already has a different `actual_delivery_time_min`.",
    413: "Request body over the size limit (`DELIVERY_ETA_MAX_BODY_BYTES`).",
    415: "Content-Type is not `application/json`.",
    500: "Unexpected server error (details in the server log only).",
    503: "Overloaded: the prediction queue is over its latency budget; retry later.",
}

RETRY_AFTER_HEADER: dict[str, Any] = {
    "description": "Seconds to wait before retrying.",
    "required": True,
    "schema": {"type": "integer", "minimum": 0},
}

# The non-2xx statuses each /v1 route answers, replacing BentoML's generic 400/404/500.
V1_ERROR_STATUSES: dict[str, tuple[int, ...]] = {
    "/v1/predict": (400, 413, 415, 500, 503),
    "/v1/predict/batch": (400, 413, 415, 500, 503),
    "/v1/feedback": (400, 404, 409, 413, 415, 500),
}

_NULL = {"type": "null"}


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


def _error_response(status: int) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": STATUS_DESCRIPTIONS[status],
        "content": {JSON: {"schema": copy.deepcopy(ERROR_REF)}},
    }
    if status == 503:
        response["headers"] = {"Retry-After": copy.deepcopy(RETRY_AFTER_HEADER)}
    return response


def v1_document(
    spec: Mapping[str, Any],
    error_statuses: Mapping[str, tuple[int, ...]] = V1_ERROR_STATUSES,
) -> dict[str, Any]:
    """BentoML's generated document ``spec``, corrected (a new dict; ``spec`` is untouched).

    The whole document is rewritten in OpenAPI 3.0 form (``to_openapi_30``), each /v1 route's
    request body is marked required, and its error responses become exactly
    ``error_statuses[route]``, all with the ``ErrorResponse`` schema. Raises ``ValueError``
    if the document's /v1 routes are not those of ``error_statuses``.
    """
    # A JSON round trip, as served: response codes are ints in BentoML's document object.
    document: dict[str, Any] = to_openapi_30(json.loads(json.dumps(spec)))
    routes = {path for path in document["paths"] if path.startswith("/v1/")}
    if routes != set(error_statuses):
        raise ValueError(f"/v1 routes {sorted(routes)} != documented {sorted(error_statuses)}")
    document["components"]["schemas"][ERROR_SCHEMA] = copy.deepcopy(ERROR_RESPONSE)
    for path, statuses in error_statuses.items():
        operation = document["paths"][path]["post"]
        operation["requestBody"]["required"] = True
        success = {code: r for code, r in operation["responses"].items() if code.startswith("2")}
        operation["responses"] = {
            **success,
            **{str(status): _error_response(status) for status in sorted(statuses)},
        }
    return document


class OpenAPIDocumentMiddleware:
    """Answers ``GET path`` with ``v1_document(spec())``, computed once when the app starts.

    Should the correction fail, ``path`` answers 500 (as BentoML's own view does when it cannot
    generate the document) and the API itself keeps serving.
    """

    def __init__(
        self, app: ASGIApp, spec: Callable[[], Mapping[str, Any]], path: str = "/docs.json"
    ) -> None:
        self.app = app
        self.path = path
        status, payload = 200, None
        try:
            payload = v1_document(spec())
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
