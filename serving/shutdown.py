"""Graceful shutdown of a serving worker: drain, close the door, finish, exit.

BentoML 1.4 runs each worker as ``uvicorn.Server(config).run(sockets=[fd])`` on a listening socket
shared with the arbiter and the other workers. Uvicorn's own SIGTERM handling stops accepting at
once, so every connection the kernel has already completed but nobody accepted yet is reset when
the last copy of the socket closes, and a client that sends on a keep-alive connection as it is
closed loses its request. With :func:`install`, SIGTERM instead starts three phases:

1. **drain** (``drain_s``): keep serving, report not-ready (``/readyz`` 503) and answer with
   ``Connection: close``, so load balancers and keep-alive clients move elsewhere first;
2. **close the door**: attach a BPF filter that drops bare SYNs to the listening socket. The
   kernel stops starting new handshakes (a client's SYN goes unanswered and, retried after a
   second, is refused once the socket has closed), while handshakes under way complete and
   connections already queued are still accepted;
3. **finish**: once the accept queue is empty, hand over to uvicorn's graceful shutdown, which
   completes the requests in progress and runs the service's shutdown hooks.

SIGINT (Ctrl-C in a terminal) skips the drain and shuts down at once, as before.
"""

from __future__ import annotations

import ctypes
import logging
import signal
import socket
import struct
import sys
import threading
import time
from collections.abc import Iterable
from types import FrameType
from typing import Any

from framework_internals import ExitHandler, install_sigterm_handler, listening_sockets
from serving.middleware.asgi import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger("delivery_eta.shutdown")

_SO_ATTACH_FILTER = 26  # linux/asm-generic/socket.h; not exported by Python's socket module


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


class ShutdownState:
    """What this worker process is doing about shutdown (one per process: signals are)."""

    def __init__(self) -> None:
        self.drain_s = 0.0
        self.draining_since: float | None = None

    @property
    def draining(self) -> bool:
        """True from the first SIGTERM on: report not-ready, close connections after answers."""
        return self.draining_since is not None


STATE = ShutdownState()


def close_the_door(sock: Any) -> bool:
    """Make the kernel drop new connection attempts on listening ``sock``; True if it took.

    Already-queued connections stay acceptable, and handshakes already under way complete.
    Linux only (classic BPF socket filter, no privilege needed); elsewhere the worker falls back
    to uvicorn's plain shutdown.
    """
    if not sys.platform.startswith("linux"):
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
    time.sleep(STATE.drain_s)
    sockets = listening_sockets(server)
    if sockets and all(close_the_door(s) for s in sockets):
        emptied = wait_for_empty_queue(sockets)
        time.sleep(SETTLE_S)
        logger.info(
            "drained for %.1f s; listening socket closed to new connections, accept queue %s",
            STATE.drain_s,
            "empty" if emptied else f"still not empty after {QUEUE_WAIT_S:.0f} s",
        )
    # uvicorn's own handler: stop accepting, finish requests in progress, run shutdown hooks.
    uvicorn_exit(server, sig, frame)


def _drain_first(uvicorn_exit: ExitHandler) -> ExitHandler:
    """uvicorn's exit handler with the drain in front of it for SIGTERM."""

    def handle_exit(server: Any, sig: int, frame: FrameType | None) -> None:
        if sig != signal.SIGTERM:
            uvicorn_exit(server, sig, frame)  # Ctrl-C: no drain
            return
        if STATE.draining:
            return  # circus relays the arbiter's SIGTERM too: one drain is enough
        STATE.draining_since = time.monotonic()
        logger.info("SIGTERM: draining for %.1f s before closing the listener", STATE.drain_s)
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
    import time in the worker.
    """
    STATE.drain_s = drain_s
    install_sigterm_handler(_drain_first)
    return STATE


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
