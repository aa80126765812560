"""The pieces of the graceful shutdown on real loopback sockets (the whole sequence against a
real server is tests/reliability/test_shutdown_under_load.py)."""

from __future__ import annotations

import socket
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from serving.shutdown import (
    DrainingMiddleware,
    ShutdownState,
    accept_queue_length,
    close_the_door,
    wait_for_empty_queue,
)

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="BPF socket filter")


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    yield sock
    sock.close()


def _port(sock: socket.socket) -> int:
    return int(sock.getsockname()[1])


@linux_only
def test_closed_door_keeps_queued_connections_and_refuses_new_ones(
    listener: socket.socket,
) -> None:
    queued = socket.create_connection(("127.0.0.1", _port(listener)))
    queued.sendall(b"request")
    assert accept_queue_length(listener) == 1

    assert close_the_door(listener)
    # A new client's handshake is not completed while the door is closed ...
    with pytest.raises(TimeoutError):
        socket.create_connection(("127.0.0.1", _port(listener)), timeout=0.3)
    # ... but the connection that was already queued is still accepted and answered.
    accepted, _ = listener.accept()
    assert accepted.recv(16) == b"request"
    accepted.sendall(b"answer")
    assert queued.recv(16) == b"answer"
    assert accept_queue_length(listener) == 0
    assert wait_for_empty_queue([listener], timeout_s=0.1)

    # A client still knocking when the socket finally closes is refused, not left hanging.
    outcome: dict[str, Any] = {}

    def knock() -> None:
        try:
            socket.create_connection(("127.0.0.1", _port(listener)), timeout=5)
            outcome["result"] = "connected"
        except OSError as exc:
            outcome["result"] = type(exc).__name__

    knocker = threading.Thread(target=knock)
    knocker.start()
    time.sleep(0.2)
    listener.close()
    knocker.join(timeout=10)
    assert outcome["result"] == "ConnectionRefusedError"
    for sock in (queued, accepted):
        sock.close()


def test_waiting_for_the_queue_gives_up_after_its_timeout(listener: socket.socket) -> None:
    client = socket.create_connection(("127.0.0.1", _port(listener)))
    started = time.monotonic()
    assert not wait_for_empty_queue([listener], timeout_s=0.2)
    assert 0.2 <= time.monotonic() - started < 2
    client.close()


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


@linux_only
def test_the_door_filter_drops_only_new_connection_attempts(listener: socket.socket) -> None:
    """The same program on a connected socket lets data segments through: it matches bare SYNs,
    not "everything" (so a handshake's final ACK reaching the listener completes it)."""
    client = socket.create_connection(("127.0.0.1", _port(listener)))
    server_side, _ = listener.accept()
    assert close_the_door(server_side)
    client.sendall(b"after the door")
    server_side.settimeout(2)
    assert server_side.recv(32) == b"after the door"
    for sock in (client, server_side):
        sock.close()
