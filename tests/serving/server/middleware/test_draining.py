"""Answers close their connection while the worker drains (serving/server/middleware/draining.py)."""

from __future__ import annotations

import time
from typing import Any

from serving.server.drain import ShutdownState
from serving.server.middleware.draining import DrainingMiddleware


async def _headers_sent(state: ShutdownState) -> list[tuple[bytes, bytes]]:
    sent: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"connection", b"keep-alive")],
            }
        )
        await send({"type": "http.response.body", "body": b"{}"})

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: Any) -> None:
        sent.append(message)

    await DrainingMiddleware(app, state)({"type": "http", "path": "/v1/predict"}, receive, send)
    return list(sent[0]["headers"])


async def test_answers_close_their_connection_only_while_draining() -> None:
    state = ShutdownState()
    assert (b"connection", b"keep-alive") in await _headers_sent(state)
    state.draining_since = time.monotonic()
    headers = await _headers_sent(state)
    assert [v for k, v in headers if k == b"connection"] == [b"close"]
    assert (b"content-type", b"application/json") in headers
