"""A real uvicorn server (uvloop + httptools, as BentoML's workers run it) in a thread, on sockets
the test made: for tests of what happens at the listener without starting ``bentoml serve``."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import uvicorn
import uvloop

T = TypeVar("T")


async def hello(scope: Any, receive: Any, send: Any) -> None:
    """The smallest ASGI app: 200 ``hello`` to every HTTP request."""
    assert scope["type"] == "http"
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"5")]}
    )
    await send({"type": "http.response.body", "body": b"hello"})


def listener(backlog: int = 1024) -> socket.socket:
    """A listening TCP socket on a free 127.0.0.1 port."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(backlog)
    return sock


class ThreadedServer:
    """A started ``uvicorn.Server`` and the event loop (in another thread) it runs on."""

    def __init__(self, server: uvicorn.Server, loop: asyncio.AbstractEventLoop) -> None:
        self.server = server
        self.loop = loop

    def call(self, fn: Callable[[], Awaitable[T]], timeout_s: float = 10) -> T:
        """Run ``await fn()`` on the server's loop and return its result."""

        async def run() -> T:
            return await fn()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout_s)

    def keep_busy(self, block_s: float) -> Callable[[], None]:
        """Make every loop iteration last at least ``block_s`` (a callback that blocks, then
        reschedules itself), as a loop under load does; returns the function that stops it."""
        running = True

        def block() -> None:
            if running:
                time.sleep(block_s)
                self.loop.call_soon(block)

        def stop() -> None:
            nonlocal running
            running = False

        self.loop.call_soon_threadsafe(block)
        return stop


@contextlib.contextmanager
def uvicorn_in_thread(
    app: Any = hello, *, sockets: list[socket.socket], **config: Any
) -> Iterator[ThreadedServer]:
    """Serve ``app`` on ``sockets`` with uvicorn on a uvloop loop in a thread until the block ends."""
    server = uvicorn.Server(
        uvicorn.Config(
            app, loop="uvloop", http="httptools", lifespan="off", log_level="warning", **config
        )
    )
    loop = uvloop.new_event_loop()
    thread = threading.Thread(
        target=loop.run_until_complete, args=(server.serve(sockets=sockets),), daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield ThreadedServer(server, loop)
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        loop.close()


def get(port: int, path: str = "/", timeout_s: float = 10) -> bytes:
    """One HTTP/1.1 GET on a new connection; the raw response (the server's answer to it)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n".encode())
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)
