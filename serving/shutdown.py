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

import contextlib
import ctypes
import errno
import logging
import os
import shutil
import signal
import socket
import stat
import struct
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from types import FrameType
from typing import Any

from framework_internals import (
    ExitHandler,
    install_listener_hooks,
    install_sigterm_handler,
    listening_sockets,
)
from serving.middleware.asgi import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger("delivery_eta.shutdown")

_SO_ATTACH_FILTER = 26  # linux/asm-generic/socket.h; not exported by Python's socket module
_SO_DETACH_FILTER = 27
_LINUX = sys.platform.startswith("linux")


def _bpf(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("HBBI", code, jt, jf, k)  # struct sock_filter


# Classic BPF run on each segment reaching the listener, whose data starts at the TCP header:
# drop bare SYNs (new connection attempts), keep everything else -- in particular the final
# ACK of a handshake already under way, so a client that got its SYN-ACK is not left hanging.
_REFUSE_NEW_CONNECTIONS = b"".join(
    [
        _bpf(0x30, 0, 0, 13),  # ldb [13]             TCP flags
        _bpf(0x54, 0, 0, 0x12),  # and #(SYN|ACK)
        _bpf(0x15, 0, 1, 0x02),  # jeq #SYN ? next : skip one
        _bpf(0x06, 0, 0, 0),  # ret #0               drop
        _bpf(0x06, 0, 0, 0xFFFFFFFF),  # ret #-1     keep
    ]
)
_TCP_INFO_LEN = 104
_TCPI_UNACKED_OFFSET = 24  # struct tcp_info: 8 x u8, then u32s; on a listener, accept-queue length

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


def _proc_stat(pid: int) -> list[str] | None:
    """``/proc/<pid>/stat`` from its 3rd field on (state, ppid, ...); None if there is no such pid."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()  # the command name, in parentheses, may hold spaces


def is_live_child(pid: int, parent: int) -> bool:
    """``pid`` runs (not a zombie awaiting its reaper) and is a child of ``parent``."""
    fields = _proc_stat(pid)
    return fields is not None and fields[0] not in ("Z", "X", "x") and int(fields[1]) == parent


_MARKERS_PREFIX = "delivery-eta-workers-"


class ServerWorkers:
    """The workers of one server as their marker files tell: which serve, which drain.

    Each worker touches ``serving.<pid>`` once it listens and ``draining.<pid>`` when its drain
    starts, in ``directory`` (private to the server). Only markers of live siblings count
    (``is_sibling``), so a worker that crashed or exited needs no clean-up, and a pid reused by
    the next worker clears the stale draining marker when it registers.
    """

    def __init__(self, directory: Path, pid: int, is_sibling: Callable[[int], bool]) -> None:
        self.directory = directory
        self.pid = pid
        self.is_sibling = is_sibling

    @classmethod
    def of_this_server(cls) -> ServerWorkers | None:
        """The markers of the server this worker belongs to (Linux, :func:`markers_folder`); None,
        with a warning, when they cannot be kept. Folders of servers no longer running go."""
        arbiter = os.getppid()
        directory = markers_folder(arbiter)
        if directory is None:
            return None
        root, uid = directory.parent, os.getuid()
        try:
            directory.mkdir(mode=0o700, exist_ok=True)
            info = directory.lstat()
            if not stat.S_ISDIR(info.st_mode) or info.st_uid != uid:  # lstat: no symlink
                raise PermissionError(f"{directory} is not a directory of uid {uid}")
        except OSError as exc:
            logger.warning("workers cannot tell a lone restart from a server stop: %s", exc)
            return None
        _remove_folders_of_stopped_servers(root, uid)
        return cls(directory, os.getpid(), lambda pid: is_live_child(pid, arbiter))

    def register(self, draining: bool = False) -> None:
        """Count this worker as one of the server's (listening) workers."""
        self._touch("serving")
        if not draining:
            (self.directory / f"draining.{self.pid}").unlink(missing_ok=True)

    def mark_draining(self) -> None:
        """Count this worker as draining."""
        self._touch("draining")

    def draining_siblings(self) -> set[int]:
        """Pids of the other live workers that are draining."""
        return {pid for pid in self._pids("draining") if pid != self.pid and self.is_sibling(pid)}

    def all_draining(self) -> bool:
        """Every other live worker of the server drains too (asked by a draining worker): the
        whole server is stopping."""
        others = {pid for pid in self._pids("serving") if pid != self.pid and self.is_sibling(pid)}
        return others <= self._pids("draining")

    def _touch(self, kind: str) -> None:
        (self.directory / f"{kind}.{self.pid}").touch()

    def _pids(self, kind: str) -> set[int]:
        pids = set()
        for marker in self.directory.glob(f"{kind}.*"):
            with contextlib.suppress(ValueError):
                pids.add(int(marker.suffix[1:]))
        return pids


def markers_folder(arbiter: int) -> Path | None:
    """Where the workers of the server whose arbiter (``bentoml serve`` process) is ``arbiter``
    keep their markers; None if that process is gone or this is not Linux."""
    arbiter_stat = _proc_stat(arbiter) if _LINUX else None
    if arbiter_stat is None:
        return None
    started = arbiter_stat[19]  # starttime: pids get reused, a (pid, start) pair does not
    return Path(tempfile.gettempdir()) / f"{_MARKERS_PREFIX}{os.getuid()}-{arbiter}-{started}"


def _remove_folders_of_stopped_servers(root: Path, uid: int) -> None:
    for folder in root.glob(f"{_MARKERS_PREFIX}{uid}-*-*"):
        arbiter, started = folder.name.rsplit("-", 2)[-2:]
        if not arbiter.isdigit():
            continue
        arbiter_stat = _proc_stat(int(arbiter))
        if arbiter_stat is None or arbiter_stat[19] != started:
            shutil.rmtree(folder, ignore_errors=True)


STATE = ShutdownState()
_DOOR = threading.Lock()
"""Held while the door is closed or reopened, so that a reopening cannot undo a closing that
started after it checked this worker was not draining."""


def _server_workers() -> ServerWorkers | None:
    if STATE.workers is None:
        STATE.workers = ServerWorkers.of_this_server()
    return STATE.workers


def close_the_door(sock: Any) -> bool:
    """Make the kernel drop new connection attempts on listening ``sock``; True if it took.

    Already-queued connections stay acceptable, and handshakes already under way complete.
    Linux only (classic BPF socket filter, no privilege needed); elsewhere the worker falls back
    to uvicorn's plain shutdown.
    """
    if not _LINUX:
        return False
    program = ctypes.create_string_buffer(_REFUSE_NEW_CONNECTIONS, len(_REFUSE_NEW_CONNECTIONS))
    # struct sock_fprog { unsigned short len; struct sock_filter *filter; } (native alignment);
    # the kernel copies the program, so the buffer may go once setsockopt returns.
    fprog = struct.pack("HP", len(_REFUSE_NEW_CONNECTIONS) // 8, ctypes.addressof(program))
    try:
        sock.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_FILTER, fprog)
    except OSError as exc:
        logger.warning("could not close the listening socket to new connections: %s", exc)
        return False
    return True


def open_the_door(sock: Any) -> bool:
    """Remove the filter :func:`close_the_door` attached to listening ``sock``; True if one was
    there. Linux only (elsewhere there is never one)."""
    if not _LINUX:
        return False
    try:
        sock.setsockopt(socket.SOL_SOCKET, _SO_DETACH_FILTER, 0)
    except OSError as exc:
        if exc.errno != errno.ENOENT:  # ENOENT: no filter attached, the usual case
            logger.warning("could not reopen the listening socket: %s", exc)
        return False
    return True


def accept_queue_length(sock: Any) -> int | None:
    """Connections the kernel has completed on listening ``sock`` that nobody accepted yet."""
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCP_INFO_LEN)
    except (OSError, AttributeError):
        return None
    (queued,) = struct.unpack_from("I", info, _TCPI_UNACKED_OFFSET)
    return int(queued)


def wait_for_empty_queue(sockets: Iterable[Any], timeout_s: float = QUEUE_WAIT_S) -> bool:
    """Block until no listening socket has queued connections (True), or ``timeout_s`` passed."""
    sockets = list(sockets)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if all(accept_queue_length(s) in (0, None) for s in sockets):
            return True
        time.sleep(0.01)
    return False


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
            emptied = wait_for_empty_queue(sockets)
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
