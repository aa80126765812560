"""Serve ``GET /metrics`` from this worker's latest rendering while it is younger than
``max_age_s``: a scrape costs one render per worker per ``max_age_s``, however many clients
scrape (4 clients scraping in a loop pushed the prediction p50 to 650 ms; docs/security.md).

Concurrent scrapes of a stale rendering wait for one new render instead of each starting one.
Only 200 answers are kept.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from serving.server.asgi import ASGIApp, Message, Receive, Scope, Send

METRICS_PATH = "/metrics"


@dataclass(frozen=True)
class _Rendering:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes
    made_at: float


class ScrapeCacheMiddleware:
    """Per-worker cache of the ``/metrics`` answer (``max_age_s`` 0: no cache)."""

    def __init__(self, app: ASGIApp, max_age_s: float) -> None:
        self.app = app
        self.max_age_s = max_age_s
        self._latest: _Rendering | None = None
        self._rendering: asyncio.Future[_Rendering] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            self.max_age_s <= 0
            or scope["type"] != "http"
            or scope.get("path") != METRICS_PATH
            # HEAD too: Starlette answers it by rendering everything, as for GET
            or scope.get("method") not in ("GET", "HEAD")
        ):
            await self.app(scope, receive, send)
            return
        latest = self._latest
        if latest is None or time.monotonic() - latest.made_at >= self.max_age_s:
            latest = await self._fresh({**scope, "method": "GET"}, receive)
        await send(
            {
                "type": "http.response.start",
                "status": latest.status,
                "headers": list(latest.headers),
            }
        )
        body = b"" if scope.get("method") == "HEAD" else latest.body
        await send({"type": "http.response.body", "body": body})

    async def _fresh(self, scope: Scope, receive: Receive) -> _Rendering:
        if self._rendering is not None:  # another scrape is rendering: share its result
            try:
                return await asyncio.shield(self._rendering)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise  # this scrape itself was cancelled
                # The scrape rendering for us was cancelled (its client left): share the next
                # render, or start it.
                return await self._fresh(scope, receive)
        self._rendering = asyncio.get_running_loop().create_future()
        try:
            rendering = await self._render(scope, receive)
        except asyncio.CancelledError:
            self._rendering.cancel()
            raise
        except Exception as exc:
            self._rendering.set_exception(exc)
            self._rendering.exception()  # retrieved: no "never retrieved" warning if unshared
            raise
        else:
            self._rendering.set_result(rendering)
            if rendering.status == 200:
                self._latest = rendering
            return rendering
        finally:
            self._rendering = None

    async def _render(self, scope: Scope, receive: Receive) -> _Rendering:
        start: Message = {}
        body = bytearray()

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                body.extend(message.get("body", b""))

        await self.app(scope, receive, capture)
        return _Rendering(
            int(start.get("status", 500)),
            list(start.get("headers", [])),
            bytes(body),
            time.monotonic(),
        )
