"""Graceful shutdown of a serving worker: drain, close the door (whole server only), finish, exit.

BentoML 1.4 runs each worker as ``uvicorn.Server(config).run(sockets=[fd])`` on a listening socket
shared with the arbiter and the other workers (one open file description: whatever is set on it
holds for every process). Uvicorn's own SIGTERM handling stops accepting at once, so when the
*whole server* stops, every connection the kernel has already completed but nobody accepted yet is
reset when the last copy of the socket closes, and a client that sends on a keep-alive connection
as it is closed loses its request. With :func:`install`, SIGTERM instead starts three phases:

1. **drain** (``drain_s``): keep serving, report not-ready (``/readyz`` 503) and answer with
   ``Connection: close``, so load balancers and keep-alive clients move elsewhere first;
2. **close the door**, only if every live worker of this server is draining (:class:`ServerWorkers`):
   attach a BPF filter that drops bare SYNs to the listening socket. The kernel stops starting new
   handshakes (a client's SYN goes unanswered and, retried after a second, is refused once the
   socket has closed), while handshakes under way complete and connections already queued are
   still accepted. A worker draining alone (one worker restarted: ``kill -TERM <worker pid>``, a
   crash loop, circus replacing it) leaves the door open: the arbiter keeps the socket, so nothing
   queued is reset, and the other workers -- or the respawned one -- take the queue;
3. **finish**: once the accept queue is empty, hand over to uvicorn's graceful shutdown, which
   completes the requests in progress and runs the service's shutdown hooks.

The filter outlives the worker that attached it (it belongs to the shared socket), so a worker
that starts listening removes any filter left there -- unless a sibling is draining, i.e. the
server may be stopping; it then reopens once no sibling drains any more and it is not draining
itself. A worker can be started but not signalled only before a whole-server stop began (circus
spawns nothing while stopping and signals every worker it has), so this never reopens the door
during one. With a single worker, its own SIGTERM cannot be told from the server's, so it closes
the door; the respawned worker reopens it.

A worker whose serving process died (SIGKILL, OOM kill) would be re-parented and keep its port:
:func:`exit_with_parent` watches for that and sends the worker its own SIGTERM (the drain), then
exits hard ``ORPHAN_GRACE_S`` after the drain if that has not ended it.

SIGINT (Ctrl-C in a terminal) skips the drain and shuts down at once, as before. The door and the
worker markers are Linux only (classic BPF, ``/proc``); elsewhere the worker shuts down as uvicorn
does.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

from framework_internals import (
    ExitHandler,
    install_listener_hooks,
    install_sigterm_handler,
    listening_sockets,
)
from serving.server.listener import close_the_door, open_the_door, wait_for_empty_queue
from serving.server.worker_markers import ServerWorkers

logger = logging.getLogger("delivery_eta.shutdown")

_LINUX = sys.platform.startswith("linux")

QUEUE_WAIT_S = 5.0
"""Longest the worker waits for the accept queue to empty once the door is closed."""
SETTLE_S = 0.3
"""Pause after the queue empties, so that connections just accepted deliver their request
before uvicorn closes the idle ones."""
REOPEN_POLL_S = 0.2
"""How often a started worker that found siblings draining checks whether they are gone."""


class ShutdownState:
    """What this worker process is doing about shutdown (one per process: signals are)."""

    def __init__(self) -> None:
        self.drain_s = 0.0
        self.draining_since: float | None = None
        self.workers: ServerWorkers | None = None

    @property
    def draining(self) -> bool:
        """True from the first SIGTERM on: report not-ready, close connections after answers."""
        return self.draining_since is not None


STATE = ShutdownState()
_DOOR = threading.Lock()
"""Held while the door is closed or reopened, so that a reopening cannot undo a closing that
started after it checked this worker was not draining."""


def _server_workers() -> ServerWorkers | None:
    if STATE.workers is None:
        STATE.workers = ServerWorkers.of_this_server()
    return STATE.workers


def _drain_then_exit(
    uvicorn_exit: ExitHandler, server: Any, sig: int, frame: FrameType | None
) -> None:
    try:
        _drain(server)
    except Exception:  # the worker must still exit: a failed drain is only a rougher stop
        logger.exception("drain failed; shutting down without it")
    finally:
        # uvicorn's own handler: stop accepting, finish requests in progress, run shutdown hooks.
        uvicorn_exit(server, sig, frame)


def _drain(server: Any) -> None:
    """The drain and, when the whole server is stopping, the closed door (phases 1 and 2)."""
    workers = _server_workers()
    if workers is not None:
        _safely(workers.mark_draining)
    time.sleep(STATE.drain_s)
    if workers is not None:
        # Again: a listening hook running as the signal came may have cleared the first marker.
        _safely(workers.mark_draining)
    sockets = listening_sockets(server)
    # Without markers (not Linux, no temp dir) every drain closes the door, as before this check
    # existed: a respawned worker reopens it.
    if workers is not None and not _safely(workers.all_draining, default=True):
        logger.info(
            "drained for %.1f s; other workers of this server keep serving: "
            "listening socket left open for them",
            STATE.drain_s,
        )
    elif sockets:
        with _DOOR:
            closed = all(close_the_door(s) for s in sockets)
        if closed:
            emptied = wait_for_empty_queue(sockets, QUEUE_WAIT_S)
            time.sleep(SETTLE_S)
            logger.info(
                "drained for %.1f s; listening socket closed to new connections, accept queue %s",
                STATE.drain_s,
                "empty" if emptied else f"still not empty after {QUEUE_WAIT_S:.0f} s",
            )


def _safely(call: Callable[[], Any], default: Any = None) -> Any:
    """``call()``, or ``default`` with a warning if the markers' folder fails (full, removed)."""
    try:
        return call()
    except OSError as exc:
        logger.warning("worker markers unusable: %s", exc)
        return default


def _reopen(sockets: list[Any]) -> None:
    """Remove a door left on ``sockets``, unless this worker drains by now (under ``_DOOR``)."""
    with _DOOR:
        if STATE.draining:
            return
        reopened = [s for s in sockets if open_the_door(s)]
    if reopened:
        logger.warning(
            "removed the filter a stopped worker left on the listening socket: "
            "accepting new connections again"
        )


def _reopen_once_siblings_gone(workers: ServerWorkers, sockets: list[Any]) -> None:
    while _safely(workers.draining_siblings, default=set()):
        if STATE.draining:
            return
        time.sleep(REOPEN_POLL_S)
    _reopen(sockets)


def reopen_unless_stopping(server: Any) -> None:
    """Listening hook: register this worker and remove a door left on the shared listening socket.

    Not while a sibling drains (the server may be stopping): then once none does any more, from a
    thread; never once this worker drains itself.
    """
    if not _LINUX:
        return
    sockets = listening_sockets(server)
    workers = _server_workers()
    if workers is None:
        _reopen(sockets)
        return
    _safely(lambda: workers.register(draining=STATE.draining))
    if STATE.draining:  # told to stop while it started: the server may be stopping
        return
    siblings = _safely(workers.draining_siblings, default=set())
    if not siblings:
        _reopen(sockets)
        return
    logger.info(
        "workers %s of this server are draining: accepting new connections once they are gone",
        sorted(siblings),
    )
    threading.Thread(
        target=_reopen_once_siblings_gone, args=(workers, sockets), name="reopen", daemon=True
    ).start()


def _drain_first(uvicorn_exit: ExitHandler) -> ExitHandler:
    """uvicorn's exit handler with the drain in front of it for SIGTERM."""

    def handle_exit(server: Any, sig: int, frame: FrameType | None) -> None:
        if sig != signal.SIGTERM:
            uvicorn_exit(server, sig, frame)  # Ctrl-C: no drain
            return
        if STATE.draining:
            return  # circus relays the arbiter's SIGTERM too: one drain is enough
        STATE.draining_since = time.monotonic()
        logger.info("SIGTERM: draining for %.1f s", STATE.drain_s)
        # A thread, not the event loop: this runs inside a signal handler, and the phases sleep.
        threading.Thread(
            target=_drain_then_exit,
            args=(uvicorn_exit, server, sig, frame),
            name="drain",
            daemon=True,
        ).start()

    return handle_exit


def install(drain_s: float) -> ShutdownState:
    """Give this process's uvicorn server the drain-first SIGTERM handling (idempotent).

    BentoML builds and runs each worker's uvicorn server itself and offers no hook for its
    shutdown, so ``framework_internals.install_sigterm_handler`` patches uvicorn's exit handler;
    it must be in place before ``Server.run`` installs its signal handlers, i.e. at service
    import time in the worker. Its listening hook (:func:`reopen_unless_stopping`) makes a worker
    restarted alone safe: it removes a door its predecessor left on the shared socket.
    """
    STATE.drain_s = drain_s
    # Read now, at import: by the time the worker listens (after loading the model) a parent
    # killed meanwhile has already been replaced by init, and the watch would never fire.
    global _PARENT_AT_IMPORT
    _PARENT_AT_IMPORT = os.getppid()
    install_sigterm_handler(_drain_first)
    install_listener_hooks(listening=reopen_unless_stopping)
    install_listener_hooks(listening=exit_with_parent)
    return STATE


_PARENT_AT_IMPORT: int | None = None
PARENT_POLL_S = 1.0
"""How often a worker checks that the process that started it is still there."""
ORPHAN_GRACE_S = 30.0
"""Past its drain, how long an orphaned worker may take to stop before it exits hard."""


def exit_with_parent(server: Any = None) -> None:
    """Stop this worker once the serving process that started it is gone (idempotent).

    A worker whose arbiter died (SIGKILL, OOM kill) is re-parented and would otherwise keep the
    port and its memory forever, answering as a server nobody supervises (found: workers left
    running for an hour after a killed test server). It gets SIGTERM, i.e. the usual drain, and
    exits hard if that has not ended it ``ORPHAN_GRACE_S`` after the drain.
    Runs from the listening hook: only workers listen, never the serving process itself.
    """
    if getattr(exit_with_parent, "started", False):
        return
    exit_with_parent.started = True  # type: ignore[attr-defined]
    parent = _PARENT_AT_IMPORT if _PARENT_AT_IMPORT is not None else os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_S)
        logger.warning("the serving process (pid %d) is gone: stopping this worker", parent)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(STATE.drain_s + ORPHAN_GRACE_S)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
