"""Refuse hostile or oversized request bodies before anything reads or deserialises them.

BentoML 1.4 treats an unknown Content-Type as JSON and understands a pickle media type for its
internal calls; public routes here accept JSON only (415 otherwise) and at most
``max_body_bytes`` (413), checked on the declared length, or while reading a body that declares none.
"""

from __future__ import annotations

import json

from serving.middleware.asgi import ASGIApp, Message, Receive, Scope, Send, header
from serving.middleware.request_context import annotate

_JSON_TYPES = frozenset({"application/json"})


async def _reply(send: Send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class HttpGuardMiddleware:
    """JSON-only, size-limited bodies for requests with a body under ``prefix``."""

    def __init__(self, app: ASGIApp, max_body_bytes: int, prefix: str = "/v1/") -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or not scope.get("path", "").startswith(self.prefix)
            or scope.get("method") not in ("POST", "PUT", "PATCH")
        ):
            await self.app(scope, receive, send)
            return
        media_type = (header(scope, b"content-type") or "").split(";")[0].strip().lower()
        if media_type not in _JSON_TYPES:
            refusal = f"Content-Type must be application/json, got {media_type or 'none'!r}"
            annotate(error=refusal)
            await _reply(send, 415, refusal)
            return
        declared = header(scope, b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body_bytes):
            refusal = f"request body over {self.max_body_bytes} bytes"
            annotate(error=refusal)
            await _reply(send, 413, refusal)
            return

        if declared is not None:
            # h11 enforces the declared length, so the app can read the body as it streams.
            await self.app(scope, receive, send)
            return
        # No declared length (chunked): read up to the limit here, then replay it to the app.
        # (Raising from inside the app's receive would surface as BentoML's generic 500.)
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # client went away
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_body_bytes:
                refusal = f"request body over {self.max_body_bytes} bytes"
                annotate(error=refusal)
                await _reply(send, 413, refusal)
                return
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        await self.app(scope, replay, send)
