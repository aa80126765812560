"""Per-connection HTTP limits: request-target and header-block size, header and body read
timeouts, and a cap on requests per keep-alive connection.

Pure logic: uvicorn's protocol (through ``framework_internals.guard_connections``) reports each
parser event to a :class:`ConnectionGuard`, which answers with a refusal or acts through the
small :class:`Connection` interface, so everything here is testable without a server.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

REFUSAL_REASONS = (
    "request_target_too_long",
    "headers_too_large",
    "invalid_request",
    "header_timeout",
    "body_timeout",
    "body_too_large",
    "unsupported_media_type",
    "json_shape",
)
"""The fixed label set of the refusals metric (see ``serving.server.edge.refusals``)."""


@dataclass(frozen=True)
class EdgeLimits:
    """Limits every connection is held to (``serving.settings`` documents each one)."""

    max_request_target_bytes: int = 8192
    max_header_bytes: int = 32768
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    max_requests_per_connection: int = 0  # 0: no limit


@dataclass(frozen=True)
class Refusal:
    """An answer that ends the connection: ``status``, a short ``message`` and the metric
    ``reason``."""

    status: int
    reason: str
    message: str


class Timer(Protocol):
    """A pending callback (``asyncio.TimerHandle``)."""

    def cancel(self) -> None: ...


class Connection(Protocol):
    """What a guard may do to its connection."""

    def refuse(self, status: int, message: str) -> None: ...
    def close(self) -> None: ...
    def response_started(self) -> bool: ...
    def reading_paused(self) -> bool: ...
    def call_later(self, delay_s: float, callback: Callable[[], None]) -> Timer: ...


class ConnectionGuard:
    """Holds one connection to :class:`EdgeLimits`; ``refused(reason)`` counts each refusal.

    Header timeout: from the connection's start, or a request's first byte, to the end of its
    header block (an idle keep-alive connection between requests is uvicorn's own keep-alive
    timeout's). Body timeout: no body byte for that long while the app waits for one.
    """

    def __init__(
        self,
        limits: EdgeLimits,
        connection: Connection,
        refused: Callable[[str], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limits = limits
        self.connection = connection
        self._refused = refused
        self._clock = clock
        self.requests = 0
        self._reading_head = True  # between requests, the next one's header block is awaited
        self._head_bytes = 0  # bytes of the current header block received so far
        self._target_bytes = 0
        self._head_started = False  # a byte of the current header block has arrived
        self._in_body = False
        self._last_body_at = 0.0
        self._header_timer: Timer | None = None
        self._body_timer: Timer | None = None

    # -- events from the protocol

    def opened(self) -> None:
        """The connection was accepted: its first header block must arrive in time."""
        self._arm_header_timer()

    def closed(self) -> None:
        """The connection is gone: stop its timers."""
        self._cancel_header_timer()
        self._cancel_body_timer()

    def head_room(self) -> int | None:
        """Bytes the header block being read may still take; None outside a header block."""
        if not self._reading_head:
            return None
        return max(0, self.limits.max_header_bytes - self._head_bytes)

    def head_limit(self) -> int:
        """Most bytes a header block, or a body's framing and trailers, may take."""
        return self.limits.max_header_bytes

    def receiving(self, size: int) -> None:
        """``size`` bytes are about to be parsed."""
        if self._reading_head:
            self._head_bytes += size
            self._head_started = True

    def fed(self) -> None:
        """The parser consumed what arrived: watch a body that is still to come."""
        if self._in_body and self._body_timer is None:
            self._last_body_at = self._clock()
            self._body_timer = self.connection.call_later(
                self.limits.body_timeout_s, self._body_timeout
            )
        elif self._reading_head and self._head_started and self._header_timer is None:
            self._arm_header_timer()  # a later request on a keep-alive connection started

    def message_begin(self) -> None:
        """A request's first byte was parsed."""
        self._reading_head = True
        self._head_started = True
        self._target_bytes = 0

    def url(self, size: int) -> Refusal | None:
        """Another ``size`` bytes of the request target: a refusal once over the limit."""
        self._target_bytes += size
        if self._target_bytes > self.limits.max_request_target_bytes:
            return self._refusal(
                414,
                "request_target_too_long",
                f"request target over {self.limits.max_request_target_bytes} bytes",
            )
        return None

    def headers_too_large(self) -> Refusal:
        """The header block reached its limit unfinished."""
        return self._refusal(
            431, "headers_too_large", f"header block over {self.limits.max_header_bytes} bytes"
        )

    def headers_complete(self) -> bool:
        """A header block ended; False if the connection must close after this response."""
        self._cancel_header_timer()
        self._reading_head = False
        self._head_started = False
        self._head_bytes = 0
        self._in_body = True
        self.requests += 1
        cap = self.limits.max_requests_per_connection
        return cap == 0 or self.requests < cap

    def body(self) -> None:
        """Body bytes arrived."""
        self._last_body_at = self._clock()

    def message_complete(self) -> None:
        """The request (body included) was read to its end."""
        self._in_body = False
        self._cancel_body_timer()
        self._reading_head = True

    def invalid(self) -> None:
        """The parser refused the request (uvicorn answers 400 and closes)."""
        self._refused("invalid_request")

    # -- timers

    def _arm_header_timer(self) -> None:
        self._header_timer = self.connection.call_later(
            self.limits.header_timeout_s, self._header_timeout
        )

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _cancel_body_timer(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _header_timeout(self) -> None:
        self._header_timer = None
        if not self._reading_head:
            return
        self._refused("header_timeout")
        if self._head_started:
            self.connection.refuse(408, "request header not received in time")
        else:
            self.connection.close()  # an idle connection: nothing was asked, nothing to answer

    def _body_timeout(self) -> None:
        self._body_timer = None
        if not self._in_body:
            return
        idle_s = self._clock() - self._last_body_at
        if self.connection.reading_paused() or idle_s < self.limits.body_timeout_s:
            # Not the client's fault (the app has not taken what came), or it sent meanwhile.
            wait_s = self.limits.body_timeout_s - (
                0.0 if self.connection.reading_paused() else idle_s
            )
            self._body_timer = self.connection.call_later(max(wait_s, 0.01), self._body_timeout)
            return
        self._refused("body_timeout")
        if self.connection.response_started():
            self.connection.close()  # answered without the body; stop waiting for the rest
        else:
            self.connection.refuse(408, "request body not received in time")

    def _refusal(self, status: int, reason: str, message: str) -> Refusal:
        self._refused(reason)
        return Refusal(status, reason, message)


def guard_factory(
    limits: EdgeLimits, refused: Callable[[str], None]
) -> Callable[[Any], ConnectionGuard]:
    """``make_guard`` for ``framework_internals.guard_connections``."""

    def make_guard(connection: Any) -> ConnectionGuard:
        return ConnectionGuard(limits, connection, refused)

    return make_guard
