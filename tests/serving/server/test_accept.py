"""Greedy accepting (serving/server/accept.py) on a real uvicorn + uvloop server whose loop is kept busy,
as a worker's loop is under load (the whole service under a flood: tests/service/test_overload.py).
"""

from __future__ import annotations

import errno
import socket
import sys
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import pytest

import serving.server.accept
from serving.server.accept import GreedyAcceptor, install
from serving.server.listener import accept_queue_length
from tests.harness.uvicorn_thread import ThreadedServer, get, listener, uvicorn_in_thread

QUEUED = 100
BLOCK_S = 0.02  # every loop iteration lasts >= 20 ms


@pytest.fixture
def running() -> Iterator[ThreadedServer]:
    sock = listener()
    with uvicorn_in_thread(sockets=[sock]) as server:
        yield server
    sock.close()


def _port(server: ThreadedServer) -> int:
    return int(server.server.servers[0].sockets[0].getsockname()[1])


def _probe_behind_a_queue(server: ThreadedServer) -> float:
    """Seconds a new connection's GET takes while QUEUED connections wait to be accepted."""
    stop_blocking = server.keep_busy(BLOCK_S)
    waiting = [socket.create_connection(("127.0.0.1", _port(server))) for _ in range(QUEUED)]
    try:
        started = time.monotonic()
        assert get(_port(server)).startswith(b"HTTP/1.1 200")
        return time.monotonic() - started
    finally:
        stop_blocking()
        for sock in waiting:
            sock.close()


def _start(server: ThreadedServer, acceptor: GreedyAcceptor) -> None:
    async def start() -> None:
        acceptor.start(server.server)

    server.call(start)


def test_uvloop_alone_accepts_one_connection_per_loop_iteration(running: ThreadedServer) -> None:
    # The root cause: a probe waits for every connection queued before it, one iteration each.
    assert _probe_behind_a_queue(running) > QUEUED * BLOCK_S * 0.8


def test_the_greedy_acceptor_takes_the_whole_queue_in_a_few_iterations(
    running: ThreadedServer,
) -> None:
    acceptor = GreedyAcceptor(batch=64)
    _start(running, acceptor)
    try:
        seconds = _probe_behind_a_queue(running)
    finally:
        running.call(acceptor.stop)
    assert seconds < QUEUED * BLOCK_S / 4, f"{seconds:.2f} s"  # measured 0.03-0.1 s
    assert acceptor.accepted >= QUEUED - 2  # the loop's own accept takes one now and then


def test_connections_it_accepted_are_uvicorns(running: ThreadedServer) -> None:
    acceptor = GreedyAcceptor(batch=64)
    _start(running, acceptor)
    stop_blocking = running.keep_busy(BLOCK_S)  # the 20 queue up before the next wake-up
    idle = [socket.create_connection(("127.0.0.1", _port(running))) for _ in range(20)]
    deadline = time.monotonic() + 5
    while len(running.server.server_state.connections) < 20 and time.monotonic() < deadline:
        time.sleep(0.01)
    stop_blocking()
    # uvicorn tracks them (and its graceful shutdown closes them) whoever accepted them; the
    # loop's own accept may have taken the first.
    assert len(running.server.server_state.connections) == 20
    accepted = acceptor.accepted
    assert accepted >= 15
    running.call(acceptor.stop)
    # Stopped: a new connection is the event loop's own to accept (and still served).
    assert get(_port(running)).startswith(b"HTTP/1.1 200")
    assert acceptor.accepted == accepted
    for sock in idle:
        sock.close()


def test_a_stuck_loop_still_answers_nothing(running: ThreadedServer) -> None:
    # Accepting stays on the event loop: /livez served there still fails when the loop is stuck.
    acceptor = GreedyAcceptor(batch=64)
    _start(running, acceptor)
    running.loop.call_soon_threadsafe(time.sleep, 1.5)
    time.sleep(0.1)
    with pytest.raises(TimeoutError):
        get(_port(running), timeout_s=0.5)
    running.call(acceptor.stop)


class _Task:
    def add_done_callback(self, callback: Callable[..., None]) -> None:
        pass


class _Loop:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def create_task(self, coro: Coroutine[Any, Any, Any]) -> _Task:
        coro.close()  # the hand-over is not under test here
        return _Task()

    def remove_reader(self, fd: int) -> None:
        self.calls.append(("remove_reader", fd))

    def add_reader(self, fd: int, callback: Callable[..., None], *args: Any) -> None:
        self.calls.append(("add_reader", fd))

    def call_later(self, delay: float, callback: Callable[..., None], *args: Any) -> None:
        self.calls.append(("call_later", delay))
        callback(*args)


class _Listener:
    def __init__(self, error: int) -> None:
        self.error = error

    def fileno(self) -> int:
        return 7

    def accept(self) -> tuple[socket.socket, Any]:
        raise OSError(self.error, "simulated")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="accept queue via TCP_INFO")
def test_a_wake_up_takes_its_workers_share_of_the_queue_at_most_batch() -> None:
    # Workers share the listening socket: each takes its share, so a burst of keep-alive
    # connections is not all one worker's (measured: 512 of 512 on one of 2 without shares).
    sock = listener()
    sock.setblocking(False)
    clients = [socket.create_connection(sock.getsockname()) for _ in range(10)]
    deadline = time.monotonic() + 5
    while accept_queue_length(sock) != 10 and time.monotonic() < deadline:
        time.sleep(0.01)
    acceptor = GreedyAcceptor(batch=64, workers=2)
    acceptor._loop = _Loop()  # type: ignore[assignment]
    acceptor._accept(sock)
    assert (acceptor.accepted, accept_queue_length(sock)) == (5, 5)
    acceptor.batch = 2
    acceptor._accept(sock)
    assert (acceptor.accepted, accept_queue_length(sock)) == (7, 3)
    for client in [*clients, sock]:
        client.close()


def test_out_of_file_descriptors_pauses_instead_of_spinning() -> None:
    acceptor = GreedyAcceptor(batch=64)
    loop = _Loop()
    acceptor._loop = loop  # type: ignore[assignment]
    acceptor._accept(_Listener(errno.EMFILE))  # type: ignore[arg-type]
    assert loop.calls == [
        ("remove_reader", 7),
        ("call_later", serving.server.accept.RETRY_AFTER_S),
        ("add_reader", 7),
    ]


def test_batch_0_leaves_accepting_to_the_event_loop() -> None:
    assert install(0) is None
    with pytest.raises(ValueError):
        GreedyAcceptor(batch=0)
