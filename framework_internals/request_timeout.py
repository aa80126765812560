"""Touch-point 13: BentoML's per-request timeout timer, cancelled once the response starts."""

from __future__ import annotations

import asyncio
from typing import Any


def release_request_timers() -> None:
    """Make BentoML's ``TimeoutMiddleware`` cancel its timer once the response has started.

    Same answers as BentoML's own (a 504 JSON error when nothing was sent within the timeout);
    only the timer no longer outlives the request by up to the timeout. Idempotent.
    """
    from bentoml._internal.server.http.traffic import TimeoutMiddleware

    if getattr(TimeoutMiddleware.__call__, "__delivery_eta_patched__", False):
        return
    original = TimeoutMiddleware.__call__

    async def call(self: Any, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await original(self, scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        timer = loop.call_later(self.timeout, self._set_timer_out, waiter)

        async def started(message: Any) -> None:
            if not waiter.done():
                waiter.set_result(None)
            await send(message)

        handled = asyncio.ensure_future(self.app(scope, receive, started))
        try:
            await waiter
        except TimeoutError:
            if handled.cancel():
                from starlette.responses import JSONResponse

                message = f"Not able to process the request in {self.timeout} seconds"
                await JSONResponse({"error": message}, status_code=504)(scope, receive, send)
            return
        finally:
            timer.cancel()
        await handled

    call.__delivery_eta_patched__ = True  # type: ignore[attr-defined]
    TimeoutMiddleware.__call__ = call  # type: ignore[method-assign]
