"""Touch-points 2, 8 and the app half of 9: the life of each worker's ``uvicorn.Server``.

BentoML builds and runs each worker's uvicorn server itself: there is no hook before uvicorn stops
accepting, none between "listening" and "stop accepting", no public way to hand uvicorn a
connection accepted elsewhere, and no way to wrap the ASGI app outside BentoML's own middlewares.
These class-level wraps of ``uvicorn.Server`` provide them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

# --------------------------------------------------------------------------- 2. shutdown

ExitHandler = Callable[[Any, int, Any], None]


def install_sigterm_handler(make_handler: Callable[[ExitHandler], ExitHandler]) -> None:
    """Replace ``uvicorn.Server.handle_exit`` with ``make_handler(original)`` in this process.

    Must run before ``Server.run`` installs its signal handlers, i.e. when the worker imports the
    service. Idempotent: a second call keeps the first replacement.
    """
    import uvicorn

    if getattr(uvicorn.Server.handle_exit, "__delivery_eta_patched__", False):
        return
    handler = make_handler(uvicorn.Server.handle_exit)
    handler.__delivery_eta_patched__ = True  # type: ignore[attr-defined]
    uvicorn.Server.handle_exit = handler  # type: ignore[method-assign,assignment]


def listening_sockets(server: Any) -> list[Any]:
    """The listening sockets of a running ``uvicorn.Server`` (``Server.servers``); none before
    ``startup`` has set that attribute (a SIGTERM can reach a worker still loading the model)."""
    return [
        sock
        for asyncio_server in getattr(server, "servers", ())
        for sock in (asyncio_server.sockets or ())
    ]


# --------------------------------------------------------------------------- 8. listeners

_STARTING_HOOKS: list[Callable[[Any], None]] = []
_LISTENING_HOOKS: list[Callable[[Any], None]] = []
_CLOSING_HOOKS: list[Callable[[Any], Awaitable[None]]] = []


def install_listener_hooks(
    *,
    starting: Callable[[Any], None] | None = None,
    listening: Callable[[Any], None] | None = None,
    closing: Callable[[Any], Awaitable[None]] | None = None,
) -> None:
    """Wrap ``uvicorn.Server`` in this process: ``starting(server)`` runs first thing in
    ``startup`` (the config is loaded; nothing listens and the lifespan has not started),
    ``listening(server)`` once ``startup`` has opened the listeners (not when start-up failed),
    and ``await closing(server)`` first thing in ``shutdown``, before uvicorn stops accepting and
    asks open connections to finish.

    Must run before ``Server.run`` (at service import time in the worker). Several features may
    register hooks; they run in registration order, and registering the same hook again is a
    no-op.
    """
    import uvicorn

    for hook, hooks in ((starting, _STARTING_HOOKS), (listening, _LISTENING_HOOKS)):
        if hook is not None and hook not in hooks:
            hooks.append(hook)
    if closing is not None and closing not in _CLOSING_HOOKS:
        _CLOSING_HOOKS.append(closing)
    if getattr(uvicorn.Server.startup, "__delivery_eta_patched__", False):
        return
    original_startup, original_shutdown = uvicorn.Server.startup, uvicorn.Server.shutdown

    async def startup(self: Any, sockets: Any = None) -> None:
        for hook in list(_STARTING_HOOKS):
            hook(self)
        await original_startup(self, sockets=sockets)
        if self.started:
            for hook in list(_LISTENING_HOOKS):
                hook(self)

    async def shutdown(self: Any, sockets: Any = None) -> None:
        try:
            for hook in list(_CLOSING_HOOKS):
                await hook(self)
        finally:
            await original_shutdown(self, sockets=sockets)

    startup.__delivery_eta_patched__ = True  # type: ignore[attr-defined]
    uvicorn.Server.startup = startup  # type: ignore[method-assign]
    uvicorn.Server.shutdown = shutdown  # type: ignore[method-assign]


def connection_protocol_factory(server: Any) -> Callable[[], Any]:
    """A factory of the protocol a running ``uvicorn.Server`` serves each connection with.

    The same one ``Server.startup`` passes to ``loop.create_server``: a connection handed to
    ``loop.connect_accepted_socket`` with it is tracked (``server_state.connections``) and shut
    down gracefully like one uvicorn accepted itself.
    """
    config = server.config

    def create_protocol() -> Any:
        return config.http_protocol_class(
            config=config, server_state=server.server_state, app_state=server.lifespan.state
        )

    return create_protocol


# --------------------------------------------------------------------------- 9. the served app


def wrap_served_app(server: Any, wrap: Callable[[Any], Any]) -> None:
    """Serve ``wrap(app)`` instead of the ASGI app a ``uvicorn.Server`` was configured with.

    Call from a ``starting`` hook (:func:`install_listener_hooks`): the config is loaded, and the
    lifespan and every connection protocol read ``config.loaded_app`` only after it.
    """
    server.config.loaded_app = wrap(server.config.loaded_app)
