"""The pieces of the graceful shutdown on real loopback sockets (the whole sequence against a
real server is tests/reliability/test_shutdown_under_load.py)."""

from __future__ import annotations

import os
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from serving.server import drain
from serving.server.drain import ShutdownState, reopen_unless_stopping
from serving.server.listener import (
    accept_queue_length,
    close_the_door,
    open_the_door,
    wait_for_empty_queue,
)
from serving.server.worker_markers import ServerWorkers

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


@linux_only
def test_reopening_the_door_lets_new_connections_in_again(listener: socket.socket) -> None:
    assert not open_the_door(listener)  # no filter: nothing to remove (ENOENT)
    assert close_the_door(listener)
    with pytest.raises(TimeoutError):
        socket.create_connection(("127.0.0.1", _port(listener)), timeout=0.3)
    assert open_the_door(listener)
    client = socket.create_connection(("127.0.0.1", _port(listener)), timeout=2)
    client.close()


class Siblings:
    """Which pids count as live workers of the server (a stand-in for /proc)."""

    def __init__(self, *alive: int) -> None:
        self.alive = set(alive)

    def __call__(self, pid: int) -> bool:
        return pid in self.alive


def _worker(tmp_path: Path, pid: int, siblings: Siblings) -> ServerWorkers:
    worker = ServerWorkers(tmp_path, pid, siblings)
    worker.register()
    return worker


def test_the_server_stops_only_when_every_live_worker_drains(tmp_path: Path) -> None:
    siblings = Siblings(101, 102)
    first, second = _worker(tmp_path, 101, siblings), _worker(tmp_path, 102, siblings)

    first.mark_draining()  # one worker restarted alone
    assert not first.all_draining()
    assert second.draining_siblings() == {101}
    assert first.draining_siblings() == set()

    second.mark_draining()  # both: the whole server stops
    assert first.all_draining() and second.all_draining()


def test_dead_workers_do_not_count(tmp_path: Path) -> None:
    siblings = Siblings(101, 102)
    first, second = _worker(tmp_path, 101, siblings), _worker(tmp_path, 102, siblings)
    second.mark_draining()
    siblings.alive.discard(102)  # exited (or a zombie not reaped yet)
    assert first.draining_siblings() == set()
    first.mark_draining()
    assert first.all_draining()  # the last live worker: it closes the door


def test_a_reused_pid_clears_the_draining_marker_it_inherits(tmp_path: Path) -> None:
    siblings = Siblings(101, 102)
    _worker(tmp_path, 101, siblings)
    _worker(tmp_path, 102, siblings).mark_draining()
    # 102 exited; the respawned worker got the same pid and registers as serving.
    respawned = _worker(tmp_path, 102, siblings)
    assert ServerWorkers(tmp_path, 101, siblings).draining_siblings() == set()
    # ... unless it was told to stop before it got to listen: then it drains.
    respawned.register(draining=True)
    respawned.mark_draining()
    assert ServerWorkers(tmp_path, 101, siblings).draining_siblings() == {102}


@linux_only
def test_markers_folder_is_per_server_and_stopped_servers_folders_go(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    stale = tmp_path / f"delivery-eta-workers-{os.getuid()}-4194305-123"  # > any pid_max
    stale.mkdir()
    (stale / "serving.7").touch()

    workers = ServerWorkers.of_this_server()
    assert workers is not None
    assert workers.directory.parent == tmp_path
    assert f"-{os.getppid()}-" in workers.directory.name
    assert not stale.exists()
    assert workers.is_sibling(os.getpid())  # this process is a live child of its parent
    assert not workers.is_sibling(4194305)


class FakeServer:
    """What the shutdown reads of a running ``uvicorn.Server``: its listening sockets."""

    def __init__(self, sock: socket.socket) -> None:
        self.servers = [SimpleNamespace(sockets=[sock])]


@pytest.fixture
def state(monkeypatch: pytest.MonkeyPatch) -> ShutdownState:
    """The module's per-process state, restored after the test."""
    fresh = ShutdownState()
    monkeypatch.setattr(drain, "STATE", fresh)
    monkeypatch.setattr(drain, "QUEUE_WAIT_S", 0.2)
    monkeypatch.setattr(drain, "SETTLE_S", 0.0)
    return fresh


def _accepts_new_connections(listener: socket.socket) -> bool:
    try:
        socket.create_connection(("127.0.0.1", _port(listener)), timeout=0.3).close()
    except TimeoutError:
        return False
    return True


def _drain(listener: socket.socket) -> list[int]:
    exits: list[int] = []
    drain._drain_then_exit(
        lambda server, sig, frame: exits.append(sig), FakeServer(listener), signal.SIGTERM, None
    )
    return exits


@linux_only
def test_a_worker_draining_alone_leaves_the_door_open(
    listener: socket.socket, state: ShutdownState, tmp_path: Path
) -> None:
    siblings = Siblings(os.getpid(), 102)
    _worker(tmp_path, 102, siblings)
    state.workers = _worker(tmp_path, os.getpid(), siblings)
    assert _drain(listener) == [signal.SIGTERM]  # handed over to uvicorn's shutdown
    assert _accepts_new_connections(listener)


@linux_only
def test_the_last_worker_to_drain_closes_the_door(
    listener: socket.socket, state: ShutdownState, tmp_path: Path
) -> None:
    siblings = Siblings(os.getpid(), 102)
    _worker(tmp_path, 102, siblings).mark_draining()
    state.workers = _worker(tmp_path, os.getpid(), siblings)
    assert _drain(listener) == [signal.SIGTERM]
    assert not _accepts_new_connections(listener)


@linux_only
def test_a_starting_worker_reopens_a_door_left_by_a_dead_worker(
    listener: socket.socket, state: ShutdownState, tmp_path: Path
) -> None:
    siblings = Siblings(os.getpid())
    _worker(tmp_path, 102, siblings).mark_draining()  # drained, closed the door, exited
    close_the_door(listener)
    state.workers = ServerWorkers(tmp_path, os.getpid(), siblings)
    reopen_unless_stopping(FakeServer(listener))
    assert _accepts_new_connections(listener)


@linux_only
def test_a_starting_worker_waits_for_draining_siblings_and_never_reopens_while_draining(
    listener: socket.socket, state: ShutdownState, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(drain, "REOPEN_POLL_S", 0.02)
    siblings = Siblings(os.getpid(), 102)
    _worker(tmp_path, 102, siblings).mark_draining()
    close_the_door(listener)
    state.workers = ServerWorkers(tmp_path, os.getpid(), siblings)
    reopen_unless_stopping(FakeServer(listener))
    assert not _accepts_new_connections(listener)  # the server may be stopping
    siblings.alive.discard(102)  # it was a restart after all: the sibling is gone
    deadline = time.monotonic() + 5
    while not _accepts_new_connections(listener):
        assert time.monotonic() < deadline, "the door was never reopened"

    # A worker told to stop before it listened never reopens (the whole server is stopping).
    close_the_door(listener)
    state.draining_since = time.monotonic()
    reopen_unless_stopping(FakeServer(listener))
    assert not _accepts_new_connections(listener)
