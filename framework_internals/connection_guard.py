"""Touch-point 9: every connection served by a subclass of httptools' ``HttpToolsProtocol`` that
reports its parser callbacks to a per-connection guard (``serving.server.edge``).

uvicorn has no header-size, request-target or header/body-read timeout settings; the guard needs
the parser's callbacks and the protocol's state (transport, cycle, flow) to enforce them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from framework_internals.versions import FrameworkDriftError


class _ConnectionControl:
    """What a connection guard may do to its connection (see :func:`guard_connections`)."""

    __slots__ = ("_protocol",)

    def __init__(self, protocol: Any) -> None:
        self._protocol = protocol

    def refuse(self, status: int, message: str) -> None:
        """Answer ``status`` with a plain-text ``message`` and close the connection; just close
        it if a response is already being written (answering would corrupt it)."""
        protocol = self._protocol
        transport = protocol.transport
        if transport is None or transport.is_closing():
            return
        cycle = protocol.cycle
        if cycle is not None and cycle.response_started and not cycle.response_complete:
            transport.close()
            return
        from uvicorn.protocols.http.httptools_impl import STATUS_LINE

        body = message.encode("ascii", "replace")
        head = [STATUS_LINE[status]]
        for name, value in protocol.server_state.default_headers:
            head.extend([name, b": ", value, b"\r\n"])
        head.extend(
            [
                b"content-type: text/plain; charset=utf-8\r\n",
                b"content-length: " + str(len(body)).encode("ascii") + b"\r\n",
                b"connection: close\r\n\r\n",
                body,
            ]
        )
        transport.write(b"".join(head))
        transport.close()

    def close(self) -> None:
        """Close the connection without an answer."""
        transport = self._protocol.transport
        if transport is not None and not transport.is_closing():
            transport.close()

    def response_started(self) -> bool:
        """Whether the answer to the request being read has begun (the app did not wait for
        its body)."""
        cycle = self._protocol.cycle
        return bool(cycle is not None and cycle.response_started)

    def reading_paused(self) -> bool:
        """Whether uvicorn stopped reading because the app has not consumed the body yet."""
        flow = self._protocol.flow
        return bool(flow is not None and flow.read_paused)

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> Any:
        """``loop.call_later`` on the connection's event loop (returns a cancellable handle)."""
        return self._protocol.loop.call_later(delay_s, callback)


class _EdgeRefusal(Exception):
    """Raised from a parser callback to stop httptools parsing a refused request."""


def guard_connections(server: Any, make_guard: Callable[[Any], Any]) -> None:
    """Serve every connection of a ``uvicorn.Server`` with a guarded httptools protocol.

    ``make_guard(control)`` is called once per connection with a control object
    (``refuse(status, message)``, ``close()``, ``response_started()``, ``reading_paused()``,
    ``call_later(delay, fn)``)
    and returns the guard the protocol reports to: ``opened()``, ``closed()``,
    ``head_room() -> int | None`` (bytes the current header block may still take; None when no
    header block is being read), ``receiving(n)``, ``fed()``, ``message_begin()``,
    ``url(n) -> refusal | None``, ``headers_too_large() -> refusal`` (also for trailer fields and for framing bytes past
    ``head_limit()`` in a body), ``headers_complete() ->
    bool`` (False: close after this response), ``body()``, ``message_complete()``,
    ``invalid()``. A refusal has ``status`` and ``message``. Call from a ``starting`` hook;
    connections ``serving.server.accept`` hands over get the same protocol, since
    :func:`connection_protocol_factory` reads ``config.http_protocol_class``.
    """
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    base = server.config.http_protocol_class
    if not (isinstance(base, type) and issubclass(base, HttpToolsProtocol)):
        raise FrameworkDriftError(
            f"uvicorn serves with {base!r}, not httptools: the connection guard needs httptools"
        )
    server.config.http_protocol_class = _guarded_protocol(base, make_guard)


def _guarded_protocol(base: type, make_guard: Callable[[Any], Any]) -> type:
    class GuardedHttpToolsProtocol(base):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.edge_guard = make_guard(_ConnectionControl(self))
            self._edge_refusal: Any = None
            # Bytes fed after a header block vs body bytes httptools delivered: the difference
            # (chunk framing, trailers) is what it may be buffering outside any callback.
            self._edge_after_head: int | None = None
            self._edge_body_bytes = 0

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self.edge_guard.opened()

        def connection_lost(self, exc: Exception | None) -> None:
            self.edge_guard.closed()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            room = self.edge_guard.head_room()
            if room is not None and len(data) > room:
                # Feed the header block only up to its limit: httptools buffers an unfinished
                # header line itself, so checking after the feed would let it grow a whole read.
                head, data = data[:room], data[room:]
                if head:
                    self.edge_guard.receiving(len(head))
                    super().data_received(head)
                if self.transport.is_closing():
                    return
                if self.edge_guard.head_room() is not None:
                    refusal = self.edge_guard.headers_too_large()
                    _ConnectionControl(self).refuse(refusal.status, refusal.message)
                    return
            self.edge_guard.receiving(len(data))
            if self._edge_after_head is not None:
                self._edge_after_head += len(data)
            super().data_received(data)
            self.edge_guard.fed()
            if (
                self._edge_after_head is not None
                and self._edge_after_head - self._edge_body_bytes > self.edge_guard.head_limit()
                and not self.transport.is_closing()
            ):
                # Trailers or chunk framing past the header limit (an endless trailer line is
                # buffered inside httptools and never reaches a callback).
                refusal = self.edge_guard.headers_too_large()
                _ConnectionControl(self).refuse(refusal.status, refusal.message)

        def send_400_response(self, msg: str) -> None:
            refusal, self._edge_refusal = self._edge_refusal, None
            if refusal is None:
                self.edge_guard.invalid()
                super().send_400_response(msg)
            else:
                _ConnectionControl(self).refuse(refusal.status, refusal.message)

        def on_message_begin(self) -> None:
            self.edge_guard.message_begin()
            super().on_message_begin()

        def on_url(self, url: bytes) -> None:
            refusal = self.edge_guard.url(len(url))
            if refusal is not None:
                self._edge_refusal = refusal
                raise _EdgeRefusal(refusal.message)
            super().on_url(url)

        def on_header(self, name: bytes, value: bytes) -> None:
            if self._edge_after_head is not None:
                # A trailer field: uvicorn would append it to the request's headers, unbounded.
                self._edge_refusal = self.edge_guard.headers_too_large()
                raise _EdgeRefusal(self._edge_refusal.message)
            super().on_header(name, value)

        def on_headers_complete(self) -> None:
            self._edge_after_head, self._edge_body_bytes = 0, 0
            keep_alive = self.edge_guard.headers_complete()
            cycle = self.cycle
            super().on_headers_complete()
            if not keep_alive and self.cycle is not cycle:
                self.cycle.keep_alive = False

        def on_body(self, body: bytes) -> None:
            self._edge_body_bytes += len(body)
            self.edge_guard.body()
            super().on_body(body)

        def on_message_complete(self) -> None:
            self._edge_after_head = None
            self.edge_guard.message_complete()
            super().on_message_complete()

    return GuardedHttpToolsProtocol
