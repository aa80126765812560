"""The shared listening socket as the kernel sees it: its accept queue, and a door on it.

A worker's drain (:mod:`serving.server.drain`) closes the door -- a classic BPF filter dropping
bare SYNs, so the kernel starts no new handshakes while the connections already queued are still
accepted -- and waits for the queue to empty; a starting worker opens it again. The greedy
acceptor (:mod:`serving.server.accept`) reads the queue length to take its share. Linux only
(classic BPF, ``TCP_INFO``); elsewhere the door never closes and the length is unknown.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import socket
import struct
import sys
import time
from collections.abc import Iterable
from typing import Any

# The drain's logger: the door is one of its phases, and operators grep for it under that name.
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


def wait_for_empty_queue(sockets: Iterable[Any], timeout_s: float) -> bool:
    """Block until no listening socket has queued connections (True), or ``timeout_s`` passed."""
    sockets = list(sockets)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if all(accept_queue_length(s) in (0, None) for s in sockets):
            return True
        time.sleep(0.01)
    return False
