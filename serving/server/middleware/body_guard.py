"""Refuse hostile or oversized request bodies before anything reads or deserialises them.

BentoML 1.4 treats an unknown Content-Type as JSON and understands a pickle media type for its
internal calls; public routes here accept JSON only (415 otherwise) and at most
``max_body_bytes`` (413). The limit holds for every framing: a declared length over it is
refused at once, and the body itself is read here, counting the bytes that actually arrive
(chunked, declared or not), then handed to the app in one piece. A 413 closes the connection,
so a client streaming on is cut off instead of read to its end.

An invalid body must not cost more than a valid one: under the prefixes whose bodies pydantic
validates (``/v1/``), a JSON object with more keys than any request model has fields is refused
with one short 400 before pydantic builds an error per key (20,000 unknown keys took a worker
~0.5 s each, with a 2.8 MB answer). The v2 protocol's decoder reads the keys it knows and
stops at the first error, so its bodies skip that second parse (10 µs for one row's JSON).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from serving.server.asgi import ASGIApp, Message, Receive, Scope, Send, header
from serving.telemetry.request_notes import annotate

JSON_ONLY = frozenset({"application/json"})
"""The /v1 routes' one media type."""
INFERENCE_PROTOCOL_TYPES = frozenset({"application/json", "application/octet-stream", ""})
"""The v2 protocol's bodies: JSON, JSON followed by binary tensors, or unlabelled (NVIDIA's
client sends no Content-Type); "" stands for no Content-Type header."""
CLIENT_CLOSED_REQUEST = 499
"""Status logged for a request whose client left before its body ended (never sent)."""


async def _reply(send: Send, status: int, message: str, *, close: bool = False) -> None:
    body = json.dumps({"error": message}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    if close:
        # uvicorn closes the connection after a response carrying it, and stops reading.
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class _OversizedShape(Exception):
    """Raised from the JSON decoder's object hook to stop at the first oversized object."""


def json_shape_problem(body: bytes, max_object_keys: int) -> str | None:
    """Why a JSON ``body`` is bigger in shape than any valid request, or None.

    One decoder pass, checked as each object closes, stopping at the first object with more
    than ``max_object_keys`` keys. (A too-long array needs no check here: pydantic answers it
    with one ``too_long`` error.) A body that is not JSON at all gets None: the app's own 400
    names the syntax error.
    """

    # Every key is followed by a colon: a body with no more colons than an object may have keys
    # has no oversized object, and a single order (most requests) skips the second parse.
    if body.count(b":") <= max_object_keys:
        return None

    def check(obj: dict[str, Any]) -> dict[str, Any]:
        if len(obj) > max_object_keys:
            raise _OversizedShape(
                f"a JSON object with {len(obj)} keys (at most {max_object_keys} expected)"
            )
        return obj

    try:
        json.loads(body, object_hook=check)
    except _OversizedShape as exc:
        return str(exc)
    except (ValueError, RecursionError):
        return None
    return None


class HttpGuardMiddleware:
    """Size-limited bodies of the accepted media types for requests with a body under each
    prefix of ``media_types`` (default: JSON only, under ``/v1/``).

    ``max_object_keys`` bounds a JSON body's shape under the ``shape_checked`` prefixes (None:
    no check); ``refused(reason)`` counts each refusal (``serving.server.edge.refusals``).
    """

    def __init__(
        self,
        app: ASGIApp,
        max_body_bytes: int,
        media_types: Mapping[str, frozenset[str]] | None = None,
        max_object_keys: int | None = None,
        refused: Callable[[str], None] | None = None,
        shape_checked: tuple[str, ...] = ("/v1/",),
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.media_types = dict(media_types or {"/v1/": JSON_ONLY})
        self.max_object_keys = max_object_keys
        self.shape_checked = shape_checked
        self.refused = refused

    async def _refuse(self, send: Send, status: int, reason: str, message: str) -> None:
        annotate(error=message)
        if self.refused is not None:
            self.refused(reason)
        await _reply(send, status, message, close=status == 413)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        accepted = next((m for p, m in self.media_types.items() if path.startswith(p)), None)
        if accepted is None or scope.get("method") not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        media_type = (header(scope, b"content-type") or "").split(";")[0].strip().lower()
        if media_type not in accepted:
            expected = " or ".join(sorted(m for m in accepted if m))
            refusal = f"Content-Type must be {expected}, got {media_type or 'none'!r}"
            await self._refuse(send, 415, "unsupported_media_type", refusal)
            return
        too_large = f"request body over {self.max_body_bytes} bytes"
        declared = header(scope, b"content-length")
        if declared is not None and (
            not (declared.isascii() and declared.isdigit()) or int(declared) > self.max_body_bytes
        ):
            await self._refuse(send, 413, "body_too_large", too_large)
            return

        # Read the body here whatever its framing, counting what arrives, then replay it.
        # (Raising from inside the app's receive would surface as BentoML's generic 500.)
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                # The client left (or the edge closed a stalled body). Answer anyway: uvicorn
                # drops it, but BentoML's TimeoutMiddleware waits for a response start and
                # would hold this request -- and a shutdown -- for its whole 30 s timeout.
                # 499 (nginx's "client closed request") keeps it out of the 5xx counts.
                annotate(error="client closed the connection before the body ended")
                await _reply(send, CLIENT_CLOSED_REQUEST, "client closed the request")
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_body_bytes:
                await self._refuse(send, 413, "body_too_large", too_large)
                return
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if self.max_object_keys is not None and path.startswith(self.shape_checked):
            problem = json_shape_problem(body, self.max_object_keys)
            if problem is not None:
                await self._refuse(send, 400, "json_shape", f"request body has {problem}")
                return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)
