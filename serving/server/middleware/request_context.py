"""The ASGI middleware that opens each request's notes (``serving.telemetry.request_notes``),
echoes ``X-Request-ID`` and writes one JSON log line per request."""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable
from typing import Any

from serving.inference_protocol.paths import PROBE_TEMPLATES
from serving.server.asgi import ASGIApp, Message, Receive, Scope, Send, header
from serving.server.edge.paths import ORIGINAL_PATH_KEY, original_path
from serving.telemetry.labels import VALIDATION_CATEGORY
from serving.telemetry.logs import log_request_line
from serving.telemetry.request_notes import RequestInfo, request_scope

logger = logging.getLogger("delivery_eta.request")

# A client's id is echoed into logs and headers: accept only short, safe ids.
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# Probes and scrapes would drown the request log; they are logged at DEBUG.
QUIET_ROUTES = frozenset({"/livez", "/readyz", "/healthz", "/health", "/metrics", *PROBE_TEMPLATES})


def error_category(status: int, fields: dict[str, Any]) -> str | None:
    """Classify a response for logs and metrics; None for success."""
    if "error_category" in fields:
        return str(fields["error_category"])
    if status < 400:
        return None
    if status in (400, 413, 415, 422):
        return VALIDATION_CATEGORY
    if status == 404:
        return "not_found"
    if status == 409:
        return "conflict"
    return "client" if status < 500 else "internal"


class RequestContextMiddleware:
    """Opens the request context, sets ``X-Request-ID`` and logs the request when it ends."""

    def __init__(
        self,
        app: ASGIApp,
        on_complete: Callable[[RequestInfo, int, float, str | None], None] | None = None,
    ) -> None:
        self.app = app
        self.on_complete = on_complete

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sent_id = header(scope, b"x-request-id")
        # 128 random bits as hex, like uuid4().hex, at a fifth of its cost.
        request_id = (
            sent_id if sent_id and _VALID_REQUEST_ID.match(sent_id) else os.urandom(16).hex()
        )
        with request_scope(request_id, scope.get("path", "")) as info:
            if (
                ORIGINAL_PATH_KEY in scope
            ):  # an unknown path, collapsed by serving.server.edge.paths
                info.fields["path"] = original_path(scope)
            await self._handle(info, scope, receive, send)

    async def _handle(self, info: RequestInfo, scope: Scope, receive: Receive, send: Send) -> None:
        request_id = info.request_id
        status = 500  # if the app raises before answering, the server answers 500
        started = time.perf_counter()
        replacing = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, replacing
            if message["type"] == "http.response.start":
                status = int(message["status"])
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode()),
                ]
                if info.replacement is not None and info.replacement[0] == status:
                    replacing = True
                    message["headers"] = _with_length(message["headers"], len(info.replacement[1]))
            elif message["type"] == "http.response.body" and replacing:
                if message.get("more_body", False):
                    return  # the app's body is dropped, ours is sent with its last part
                assert info.replacement is not None
                message = {"type": "http.response.body", "body": info.replacement[1]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            latency_ms = (time.perf_counter() - started) * 1000.0
            category = error_category(status, info.fields)
            _log_request(info, scope.get("method", ""), status, latency_ms, category)
            if self.on_complete is not None:
                self.on_complete(info, status, latency_ms, category)


def _with_length(headers: list[tuple[bytes, bytes]], length: int) -> list[tuple[bytes, bytes]]:
    kept = [(name, value) for name, value in headers if name.lower() != b"content-length"]
    return [*kept, (b"content-length", str(length).encode())]


def _log_request(
    info: RequestInfo, method: str, status: int, latency_ms: float, category: str | None
) -> None:
    level = (
        logging.DEBUG
        if info.route in QUIET_ROUTES
        else (logging.WARNING if category else logging.INFO)
    )
    if not logger.isEnabledFor(level):
        return
    extra = {
        "route": info.route,
        "method": method,
        "status": status,
        "latency_ms": round(latency_ms, 3),
        **info.fields,
    }
    if category:
        extra["error_category"] = category
    extra.pop("invalid_fields", None)  # counted in metrics; the error text names them
    log_request_line(logger, level, info.request_id, extra)
