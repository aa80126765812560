"""Accept the queued connections each time the listening socket is ready -- under uvloop too.

uvloop's libuv (>= 1.45, libuv PR #3696 "unix: don't accept() connections in a loop") accepts
*one* connection per event-loop iteration and leaves the rest for the next one. An iteration runs
every callback that became ready meanwhile, and with hundreds of requests in flight that takes
0.1-1 s, so during a 512-connection flood a worker accepted a few connections per second: the
listener's accept queue (``ss -ltn`` Recv-Q) stayed at 30-400 connections for the whole flood and
every new connection waited behind them -- a kubelet's ``/livez`` probe 11-18 s, > the 5 s the
overload test allows (docs/performance.md has the figures). asyncio's own loop accepts up to
``backlog`` connections per wake-up, which is why the probes passed without uvloop.

:class:`GreedyAcceptor` restores that: a second reader on a duplicate of each listening socket
accepts, per wake-up, this worker's share of the queue (queue length / workers, at most
``batch``) and hands each connection to the event loop with ``loop.connect_accepted_socket`` and
uvicorn's own protocol factory, so uvicorn serves, counts and gracefully shuts them down like the
ones it accepted itself (the loop's own one-per-iteration accept stays; both take from the same
queue). The share keeps a burst of keep-alive connections from landing on one worker: taking up
to ``batch`` regardless, one of 2 workers once got all 512 of a flood's connections and the other
idled. It stops first thing in uvicorn's shutdown, once the connections it accepted are handed
over. ``batch`` 0 leaves accepting to the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from typing import Any

from framework_internals import (
    connection_protocol_factory,
    install_listener_hooks,
    listening_sockets,
)
from serving.server.listener import accept_queue_length

logger = logging.getLogger("delivery_eta.accept")

RETRY_AFTER_S = 1.0
"""Pause before accepting again after accept() failed, e.g. out of file descriptors (asyncio's
own ``ACCEPT_RETRY_DELAY``); a level-triggered reader would otherwise spin on the error."""
HANDOVER_WAIT_S = 1.0
"""Longest shutdown waits for accepted connections to reach uvicorn before it stops accepting."""


class GreedyAcceptor:
    """Accepts a worker's share of the queue, at most ``batch`` connections, per wake-up on a
    running uvicorn server's listeners (``workers``: how many processes share them)."""

    def __init__(self, batch: int, workers: int = 1) -> None:
        if batch < 1:
            raise ValueError("batch must be at least 1")
        self.batch = batch
        self.workers = workers
        self.accepted = 0
        self._listeners: list[socket.socket] = []
        self._handovers: set[asyncio.Task[Any]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._protocol_factory: Any = None
        self._ssl: Any = None

    def start(self, server: Any) -> None:
        """Start accepting on every listening socket of ``server`` (a started ``uvicorn.Server``)."""
        self._loop = asyncio.get_running_loop()
        self._protocol_factory = connection_protocol_factory(server)
        self._ssl = server.config.ssl
        for sock in listening_sockets(server):
            try:
                listener = socket.socket(fileno=os.dup(sock.fileno()))
            except OSError as exc:
                logger.warning("accepting one connection per loop iteration only: %s", exc)
                continue
            listener.setblocking(False)
            self._listeners.append(listener)
            self._watch(listener)

    async def stop(self, server: Any = None) -> None:
        """Stop accepting; return once the connections already accepted are uvicorn's."""
        assert self._loop is not None or not self._listeners
        for listener in self._listeners:
            if self._loop is not None:
                self._loop.remove_reader(listener.fileno())
            listener.close()
        self._listeners.clear()
        if self._handovers:
            await asyncio.wait(set(self._handovers), timeout=HANDOVER_WAIT_S)

    def _watch(self, listener: socket.socket) -> None:
        if listener.fileno() < 0:  # stopped while paused
            return
        assert self._loop is not None
        self._loop.add_reader(listener.fileno(), self._accept, listener)

    def _accept(self, listener: socket.socket) -> None:
        assert self._loop is not None
        queued = accept_queue_length(listener)  # None where TCP_INFO has no queue length
        share = self.batch if queued is None else -(-queued // self.workers)  # ceil
        for _ in range(max(1, min(self.batch, share))):
            try:
                conn, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                return  # queue empty (or another worker took the connection)
            except ConnectionAbortedError:
                continue
            except OSError as exc:  # out of file descriptors or memory, most likely
                logger.warning(
                    "accepting paused for %.0f s: %s (the event loop's own accept goes on)",
                    RETRY_AFTER_S,
                    exc,
                )
                self._loop.remove_reader(listener.fileno())
                self._loop.call_later(RETRY_AFTER_S, self._watch, listener)
                return
            conn.setblocking(False)
            self.accepted += 1
            task = self._loop.create_task(self._hand_over(conn))
            self._handovers.add(task)
            task.add_done_callback(self._handovers.discard)

    async def _hand_over(self, conn: socket.socket) -> None:
        assert self._loop is not None
        try:
            await self._loop.connect_accepted_socket(self._protocol_factory, conn, ssl=self._ssl)
        except (OSError, ValueError) as exc:  # e.g. the client already reset the connection
            logger.debug("could not serve an accepted connection: %s", exc)
            conn.close()


def install(batch: int, workers: int = 1) -> GreedyAcceptor | None:
    """Accept greedily on this process's uvicorn listeners once they open (``batch`` >= 1).

    Must run before uvicorn starts, i.e. when the worker imports the service.
    """
    if batch < 1:
        return None
    acceptor = GreedyAcceptor(batch, workers)
    install_listener_hooks(listening=acceptor.start, closing=acceptor.stop)
    return acceptor
