"""The Open Inference Protocol (v2) over HTTP: thin Starlette handlers over the pure
``serving.inference_protocol`` package and the request pipeline's ``predict_columns``.

BentoML's ``@bentoml.api`` reads bodies as JSON only, so these routes live in the Starlette app
``service.py`` mounts (like ``/health``). The served model's name and version are fixed at
start-up, so every route is an exact path the HTTP edge knows (:meth:`InferenceRoutes.paths`);
a request for another model or version reaches :meth:`InferenceRoutes.not_found` through the
edge's collapsed path, and is answered the protocol's 404. Metrics and the request log label
each request with its route *template* (``/v2/models/{model_name}/infer``), never the path.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from models.features import OrderColumns
from serving.inference_protocol import InferenceRequestError
from serving.inference_protocol.metadata import ServedModel, UnknownModel, server_metadata
from serving.inference_protocol.paths import (
    LIVE,
    MODEL,
    MODEL_VERSION,
    MODELS_PREFIX,
    READY,
    ROUTE_TEMPLATES,
    SERVER,
)
from serving.inference_protocol.requests import decode_infer_request
from serving.inference_protocol.responses import (
    OUTPUT_NAMES,
    answer_values,
    encode_infer_response,
)
from serving.server.edge.paths import ORIGINAL_PATH_KEY
from serving.telemetry.labels import BODY_FIELD, VALIDATION_CATEGORY
from serving.telemetry.request_notes import annotate, current_request

HEADER_LENGTH = "Inference-Header-Content-Length"
ANY_METHOD = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
"""The methods :meth:`InferenceRoutes.not_found` answers (every other path's 404 too)."""


@dataclass(frozen=True)
class InferenceRoutes:
    """The v2 routes of one served model.

    ``is_ready`` is the service's readiness (the same as ``/readyz``); ``predict_columns`` the
    worker pipeline's; a domain error of ``answered_errors`` is answered by ``error_answer``
    (service.py's one table), like on ``/v1``.
    """

    model: ServedModel
    server_name: str
    server_version: str
    max_rows: int
    is_ready: Callable[[], Awaitable[bool]]
    predict_columns: Callable[[OrderColumns], Awaitable[Any]]
    answered_errors: tuple[type[Exception], ...]
    error_answer: Callable[[Exception], Response]

    def paths(self) -> list[str]:
        """The exact paths served (for the edge's known set)."""
        return [self._path(template) for template in sorted(ROUTE_TEMPLATES)] + ["/v2/"]

    def routes(self) -> list[Route]:
        """Starlette routes of every v2 path, the infer routes first: Starlette tries routes in
        order, and BentoML's mount tries them once more before its app does (a route listed
        eighth cost 16 pattern matches a request, ~10 µs)."""
        handlers: dict[str, Callable[[Request], Awaitable[Response]]] = {
            f"{model}/infer": self._infer for model in (MODEL, MODEL_VERSION)
        }
        handlers |= {LIVE: self._live, READY: self._ready, SERVER: self._server_metadata}
        for model in (MODEL, MODEL_VERSION):
            handlers[model] = self._model_metadata
            handlers[f"{model}/ready"] = self._model_ready
        routes = [
            Route(
                self._path(t), _labelled(t, h), methods=["POST"] if t.endswith("infer") else ["GET"]
            )
            for t, h in handlers.items()
        ]
        return [*routes, Route("/v2/", _labelled(SERVER, self._server_metadata), methods=["GET"])]

    def _path(self, template: str) -> str:
        return template.format(model_name=self.model.name, model_version=self.model.version)

    async def _live(self, _: Request) -> Response:
        return JSONResponse({"live": True})

    async def _ready(self, _: Request) -> Response:
        ready = await self.is_ready()
        return JSONResponse({"ready": ready}, status_code=200 if ready else 503)

    async def _server_metadata(self, _: Request) -> Response:
        return JSONResponse(server_metadata(self.server_name, self.server_version))

    async def _model_metadata(self, _: Request) -> Response:
        return JSONResponse(self.model.metadata())

    async def _model_ready(self, _: Request) -> Response:
        ready = await self.is_ready()
        return JSONResponse(
            {"name": self.model.name, "ready": ready}, status_code=200 if ready else 503
        )

    async def _infer(self, request: Request) -> Response:
        encoding = request.headers.get("content-encoding", "identity").strip().lower()
        if encoding != "identity":
            return _client_error(415, f"Content-Encoding {encoding[:32]!r} is not supported")
        body = await request.body()
        try:
            decoded = decode_infer_request(
                body,
                request.headers.get(HEADER_LENGTH),
                self.model.inputs,
                OUTPUT_NAMES,
                self.max_rows,
            )
        except InferenceRequestError as exc:
            return _client_error(400, str(exc), exc.input_name or BODY_FIELD)
        try:
            batch = await self.predict_columns(decoded.orders)
        except self.answered_errors as exc:
            return self.error_answer(exc)
        values = answer_values(batch.outputs, batch.prediction_ids, decoded.outputs)
        encoded = encode_infer_response(
            self.model.name, self.model.version, decoded.request_id, decoded.outputs, values
        )
        headers = None
        if encoded.header_length is not None:
            headers = {HEADER_LENGTH: str(encoded.header_length)}
        return Response(encoded.body, media_type=encoded.media_type, headers=headers)

    async def not_found(self, request: Request) -> Response:
        """The answer for a path the edge collapsed: the protocol's 404 for ``/v2/models/...``
        (another model or version), else Starlette's own."""
        path = str(request.scope.get(ORIGINAL_PATH_KEY, ""))
        if not path.startswith(MODELS_PREFIX):
            return PlainTextResponse("Not Found", status_code=404)
        name, version = _model_of(path)
        try:
            self.model.check(name, version)
            message = f"no v2 route {path[:200]!r} for {request.method}"
        except UnknownModel as exc:
            message = str(exc)
        return _client_error(404, message)


def _labelled(
    template: str, handler: Callable[[Request], Awaitable[Response]]
) -> Callable[[Request], Awaitable[Response]]:
    async def labelled(request: Request) -> Response:
        info = current_request()
        if info is not None:  # the route template, not the path (the edge bounds both)
            info.route = template
        return await handler(request)

    return labelled


def _model_of(path: str) -> tuple[str, str | None]:
    """(model name, version or None) a ``/v2/models/...`` path names."""
    parts: Sequence[str] = path[len(MODELS_PREFIX) :].split("/")
    version = parts[2] if len(parts) > 2 and parts[1] == "versions" else None
    return parts[0], version


def _client_error(status: int, message: str, field: str | None = None) -> JSONResponse:
    annotate(error_category="not_found" if status == 404 else VALIDATION_CATEGORY)
    annotate(error=message, **({"invalid_fields": (field,)} if field else {}))
    return JSONResponse({"error": message}, status_code=status)
