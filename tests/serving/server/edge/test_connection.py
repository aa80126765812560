"""The per-connection guard's decisions, driven by hand (no server, no event loop)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from serving.server.edge.connection import REFUSAL_REASONS, ConnectionGuard, EdgeLimits

LIMITS = EdgeLimits(
    max_request_target_bytes=100,
    max_header_bytes=1000,
    header_timeout_s=10,
    body_timeout_s=30,
    max_requests_per_connection=3,
)


@dataclass
class FakeTimer:
    delay_s: float
    callback: Callable[[], None]
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True


@dataclass
class FakeConnection:
    timers: list[FakeTimer] = field(default_factory=list)
    refused: list[tuple[int, str]] = field(default_factory=list)
    closed: bool = False
    paused: bool = False
    answering: bool = False

    def refuse(self, status: int, message: str) -> None:
        self.refused.append((status, message))

    def close(self) -> None:
        self.closed = True

    def response_started(self) -> bool:
        return self.answering

    def reading_paused(self) -> bool:
        return self.paused

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> FakeTimer:
        self.timers.append(FakeTimer(delay_s, callback))
        return self.timers[-1]

    def pending(self) -> list[FakeTimer]:
        return [t for t in self.timers if not t.cancelled]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def make_guard() -> tuple[ConnectionGuard, FakeConnection, list[str], Clock]:
    connection, counted, clock = FakeConnection(), [], Clock()
    guard = ConnectionGuard(LIMITS, connection, counted.append, clock=clock)
    guard.opened()
    return guard, connection, counted, clock


def fire(timer: FakeTimer) -> None:
    assert not timer.cancelled
    timer.cancelled = True
    timer.callback()


def request(guard: ConnectionGuard, body: bool = False) -> bool:
    """One request's parser events; whether the connection may stay open."""
    guard.receiving(50)
    guard.message_begin()
    assert guard.url(10) is None
    keep_alive = guard.headers_complete()
    if body:
        guard.body()
    guard.message_complete()
    guard.fed()
    return keep_alive


def test_an_idle_new_connection_is_closed_silently_at_the_header_timeout() -> None:
    _, connection, counted, _ = make_guard()
    (timer,) = connection.pending()
    assert timer.delay_s == LIMITS.header_timeout_s
    fire(timer)
    assert connection.closed and connection.refused == []
    assert counted == ["header_timeout"]


def test_a_header_block_that_never_ends_gets_408() -> None:
    guard, connection, counted, _ = make_guard()
    guard.receiving(20)
    guard.message_begin()
    assert guard.url(5) is None
    guard.fed()
    (timer,) = connection.pending()  # still the one armed at connect: no reset per byte
    fire(timer)
    assert connection.refused == [(408, "request header not received in time")]
    assert counted == ["header_timeout"]


def test_a_complete_header_block_cancels_the_header_timer() -> None:
    guard, connection, counted, _ = make_guard()
    assert request(guard)
    assert connection.pending() == [] and counted == []


def test_a_slow_second_request_on_a_keep_alive_connection_has_its_own_deadline() -> None:
    guard, connection, counted, _ = make_guard()
    assert connection.pending()[0].delay_s == LIMITS.header_timeout_s
    request(guard)
    guard.receiving(5)
    guard.message_begin()
    guard.fed()
    (timer,) = connection.pending()
    fire(timer)
    assert connection.refused == [(408, "request header not received in time")]
    assert counted == ["header_timeout"]


def test_a_request_target_over_the_limit_is_refused_with_414() -> None:
    guard, _, counted, _ = make_guard()
    guard.message_begin()
    assert guard.url(60) is None
    refusal = guard.url(41)  # 101 bytes in two pieces
    assert refusal is not None and refusal.status == 414
    assert counted == ["request_target_too_long"]


def test_head_room_counts_down_while_the_header_block_arrives() -> None:
    guard, _, counted, _ = make_guard()
    assert guard.head_room() == 1000
    guard.receiving(400)
    guard.message_begin()
    guard.receiving(500)
    assert guard.head_room() == 100
    guard.receiving(200)
    assert guard.head_room() == 0
    refusal = guard.headers_too_large()
    assert (refusal.status, refusal.reason) == (431, "headers_too_large")
    assert counted == ["headers_too_large"]
    guard.headers_complete()
    assert guard.head_room() is None  # reading a body now
    guard.message_complete()
    assert guard.head_room() == 1000  # the next request starts from nothing


def test_a_stalled_body_is_closed_with_408_after_the_body_timeout() -> None:
    guard, connection, counted, clock = make_guard()
    guard.message_begin()
    guard.headers_complete()
    guard.body()
    guard.fed()
    (timer,) = connection.pending()
    assert timer.delay_s == LIMITS.body_timeout_s
    clock.now = 31
    fire(timer)
    assert connection.refused == [(408, "request body not received in time")]
    assert counted == ["body_timeout"]


def test_a_stalled_body_the_app_already_answered_is_just_closed() -> None:
    guard, connection, counted, clock = make_guard()
    guard.message_begin()
    guard.headers_complete()
    guard.fed()
    connection.answering = True
    clock.now = 31
    fire(connection.pending()[0])
    assert connection.closed and connection.refused == []
    assert counted == ["body_timeout"]


def test_a_body_still_arriving_or_waiting_for_the_app_is_not_timed_out() -> None:
    guard, connection, counted, clock = make_guard()
    guard.message_begin()
    guard.headers_complete()
    guard.fed()
    clock.now = 20
    guard.body()  # a byte 20 s in: the deadline moves to 50 s
    clock.now = 30
    fire(connection.pending()[0])
    (rearmed,) = connection.pending()
    assert rearmed.delay_s == pytest.approx(20)
    connection.paused = True  # the app has not read what came: not the client's fault
    clock.now = 60
    fire(rearmed)
    assert connection.pending() and connection.refused == [] and counted == []
    guard.message_complete()
    assert connection.pending() == []


def test_the_last_allowed_request_closes_its_connection() -> None:
    guard, _, _, _ = make_guard()
    assert [request(guard, body=True) for _ in range(3)] == [True, True, False]


def test_no_request_cap_means_keep_alive_forever() -> None:
    connection = FakeConnection()
    guard = ConnectionGuard(EdgeLimits(max_requests_per_connection=0), connection, lambda _: None)
    assert all(request(guard) for _ in range(10_000))


def test_parser_refusals_and_closing_count_and_stop_the_timers() -> None:
    guard, connection, counted, _ = make_guard()
    guard.invalid()
    guard.closed()
    assert counted == ["invalid_request"] and connection.pending() == []
    assert set(counted) <= set(REFUSAL_REASONS)
