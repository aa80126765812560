"""The drain's answer to clients: while the worker drains, every response closes its connection.

Keep-alive clients then reconnect, and their next connection reaches a worker that is not
stopping (:mod:`serving.server.drain` sets the state this reads).
"""

from __future__ import annotations

from serving.server.asgi import ASGIApp, Message, Receive, Scope, Send
from serving.server.drain import STATE, ShutdownState


class DrainingMiddleware:
    """While draining, ask every client to close its connection after the answer."""

    def __init__(self, app: ASGIApp, state: ShutdownState = STATE) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Checked when the request starts: outside a drain (nearly always) nothing is wrapped; a
        # request already running when the drain begins keeps its connection, the next one closes.
        if scope["type"] != "http" or not self.state.draining:
            await self.app(scope, receive, send)
            return

        async def send_closing(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v) for k, v in message.get("headers", []) if k.lower() != b"connection"
                ]
                message = {**message, "headers": [*headers, (b"connection", b"close")]}
            await send(message)

        await self.app(scope, receive, send_closing)
