"""The one door to private BentoML and uvicorn APIs: one function per touch-point.

Everything else in the project uses public APIs only. Each function below depends on something
BentoML or uvicorn does not promise to keep; ``VERIFIED_WITH`` names the versions it was checked
against, and ``tests/test_framework_internals.py`` fails, naming this module, as soon as the
installed versions differ or a touch-point's shape changes. On an upgrade: re-read each
touch-point's source, re-run that test, then update ``VERIFIED_WITH``.

Touch-points (why no public API does the job):

1. ``batch_dispatcher``: BentoML's ``CorkDispatcher`` + ``Optimizer`` (``bentoml._internal.marshal``),
   the adaptive-batching algorithm of batchable APIs. A batchable API cannot be called in-process:
   BentoML routes a service's call to its own batchable method over HTTP again.
2. ``install_sigterm_handler``: a class-level patch of ``uvicorn.Server.handle_exit``, and
   ``listening_sockets`` reads ``uvicorn.Server.servers``. BentoML builds and runs each worker's
   uvicorn server itself and has no shutdown hook that runs before uvicorn stops accepting.
3. ``bentoml_request_error_logger``: the logger BentoML 1.4 logs every failed request to, at
   ERROR with a traceback, client mistakes included; there is no setting to change that.
4. ``write_model_labels``: relabelling a stored model (``ModelInfo.dump`` into ``model.yaml``).
   BentoML 1.4 has no label-update call for the local model store.
5. ``use_model_store`` (tests only): point BentoML's model store at another folder.
6. ``pin_environment_for_workers``: BentoML starts workers through circus with ``copy_env=True``,
   so a variable set in the serving process before the workers spawn reaches every worker,
   a respawned one too.
7. ``observe_many`` / ``observe_total``: a prometheus-client ``Histogram`` child's bucket and sum
   values, a ``Summary`` child's count and sum. The public
   ``observe`` takes one value; in multiprocess mode each call writes the mmap'd file, which for
   a 1000-row batch was 1000 writes per histogram instead of one per bucket.
8. ``install_listener_hooks`` + ``connection_protocol_factory``: class-level wraps of
   ``uvicorn.Server.startup`` / ``shutdown``, and the protocol factory ``startup`` builds for its
   listeners (``config.http_protocol_class`` with ``server_state`` and ``lifespan.state``).
   uvicorn has no hook between "listening" and "stop accepting", nor a public way to hand it a
   connection accepted elsewhere; ``serving.accept`` needs both. A ``starting`` hook runs before
   the original ``startup``, while the app and protocol uvicorn will serve can still be swapped.
9. ``wrap_served_app`` + ``guard_connections``: replace ``config.loaded_app`` (the ASGI app
   uvicorn serves, outside BentoML's own middlewares, which ``add_asgi_middleware`` cannot reach)
   and ``config.http_protocol_class`` with a subclass of httptools' ``HttpToolsProtocol`` that
   reports its parser callbacks to a per-connection guard (``serving.edge``). uvicorn has no
   header-size, request-target or header/body-read timeout settings, and BentoML's request
   metrics label the raw path before any middleware of ours runs.
10. ``bentoml_fixed_paths``: the routes BentoML itself serves beside the service's APIs (probes,
   metrics, docs, its bundled static files), for ``serving.edge.paths``.
11. ``swagger_ui_assets``: the URL prefix under which BentoML serves the Swagger UI files it
   bundles (``/static_content/``), for the service's own docs page (``serving.middleware.docs_page``):
   BentoML's page cannot be customised, and no PyPI package in the lock ships Swagger UI.
12. ``release_request_timers``: a class-level replacement of BentoML's ``TimeoutMiddleware``
   ``__call__`` (``bentoml._internal.server.http.traffic``) that cancels its per-request timer
   once the response starts. BentoML's never cancels it, so each request's timer, waiter future
   and context stay alive for ``traffic.timeout`` (30 s): ~200k objects per worker at 1k req/s,
   which every full collection of the garbage collector then scans (docs/performance.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import stat
import tempfile
from collections.abc import Awaitable, Callable, Iterator, Mapping
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

VERIFIED_WITH: Mapping[str, str] = {
    "bentoml": "1.4.39",
    "uvicorn": "0.54.0",
    "prometheus-client": "0.26.0",
}
"""Installed versions every touch-point below was last checked against."""


class FrameworkDriftError(RuntimeError):
    """An installed framework differs from what ``framework_internals`` was verified with."""


def version_drift() -> dict[str, tuple[str, str]]:
    """``{package: (verified, installed)}`` for every package whose installed version differs."""
    installed = {name: version(name) for name in VERIFIED_WITH}
    return {
        name: (VERIFIED_WITH[name], installed[name])
        for name in VERIFIED_WITH
        if installed[name] != VERIFIED_WITH[name]
    }


# --------------------------------------------------------------------------- 1. batching


def batch_dispatcher(
    *,
    max_latency_ms: int,
    max_batch_size: int,
    max_wait_ms: float,
    fallback: Callable[[], np.ndarray],
) -> Any:
    """BentoML's ``CorkDispatcher`` for row matrices (batch dimension 0), with a capped optimizer.

    Decorating an ``async (parts) -> outputs`` function with the result gives the adaptive
    batching BentoML runs for batchable APIs; ``fallback`` is called (and must raise) when a
    request's estimated wait exceeds ``max_latency_ms``.
    """
    from bentoml._internal.marshal.dispatcher import CorkDispatcher

    dispatcher: Any = CorkDispatcher(
        max_latency_in_ms=max_latency_ms,
        max_batch_size=max_batch_size,
        fallback=fallback,
        get_batch_size=lambda rows: int(rows.shape[0]),
        batch_dim=(0, 0),
    )
    dispatcher.optimizer = capped_optimizer(max_latency_ms / 1000, max_wait_ms / 1000)
    return dispatcher


def capped_optimizer(max_latency_s: float, max_wait_s: float) -> Any:
    """BentoML's batching ``Optimizer`` with a ceiling on the wait and the per-row cost it learns.

    * Wait: the optimizer sets how long a queue may wait for company from the average of recent
      waits -- which include that same wait, so after a burst it stays high: a lone request
      measured 552 ms right after load, 2 ms on a fresh server. Batches still form under load
      while the model thread is busy; the cap only stops idle waiting.
    * Cost per row (``o_a``): a least-squares slope over the last 50 (rows, seconds) samples.
      Under a flood those batches all have similar sizes, so one slow call (a GC pause, a
      starved core) can tilt the slope to many ms per row (> 10 ms from a single 0.5 s call
      among 1 ms/row batches), and the dispatcher sheds whenever ``wait + o_a * queued + o_b``
      exceeds the budget. The slope is capped at the median per-row cost actually observed,
      which one outlier cannot move.
    """
    from bentoml._internal.marshal.dispatcher import Optimizer

    class CappedOptimizer(Optimizer):
        def trigger_refresh(self) -> None:
            super().trigger_refresh()
            if self.o_stat:
                observed = float(
                    np.median([seconds / max(rows, 1) for rows, seconds, _ in self.o_stat])
                )
                self.o_a = min(self.o_a, observed)
            self.wait = min(self.wait, max_wait_s)  # type: ignore[assignment]  # typed int

    return CappedOptimizer(max_latency_s)


# --------------------------------------------------------------------------- 2. uvicorn shutdown

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


# --------------------------------------------------------------------------- 3. request logger

BENTOML_REQUEST_LOGGER = "bentoml._internal.server.http_app"


def bentoml_request_error_logger() -> logging.Logger:
    """The logger ``log_exception`` of BentoML's HTTP app writes failed requests to."""
    return logging.getLogger(BENTOML_REQUEST_LOGGER)


# --------------------------------------------------------------------------- 4. model labels


def write_model_labels(tag: str, changes: Mapping[str, str]) -> dict[str, str]:
    """Update a stored model's labels and persist them in its ``model.yaml`` (atomically).

    Edits the loaded ``ModelInfo``'s label dict and writes the file the way
    ``bentoml.models.create`` does, via a temporary file + rename so that a concurrent reader (a
    starting server) never sees half a file. Returns the labels as re-read from disk.
    """
    import bentoml

    model = bentoml.models.get(tag)
    model.info.labels.update({key: str(value) for key, value in changes.items()})
    target = Path(model.path) / "model.yaml"
    mode = stat.S_IMODE(target.stat().st_mode)
    fd, tmp_name = tempfile.mkstemp(prefix=".model.yaml.", dir=target.parent)
    try:
        os.fchmod(fd, mode)  # mkstemp makes 0600; keep the file readable as before
        with os.fdopen(fd, "w", encoding="utf8") as handle:
            model.info.dump(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    return dict(bentoml.models.get(tag).info.labels)


# --------------------------------------------------------------------------- 5. model store


@contextlib.contextmanager
def use_model_store(folder: Path) -> Iterator[None]:
    """Within the block, BentoML's model store is ``folder`` (tests: a private store)."""
    from bentoml._internal.configuration.containers import BentoMLContainer
    from bentoml._internal.models import ModelStore

    with BentoMLContainer.model_store.patch(ModelStore(folder)):
        yield


# --------------------------------------------------------------------------- 6. worker environment


def pin_environment_for_workers(name: str, value: str) -> None:
    """Make every worker BentoML starts from now on (respawns too) see ``name=value``.

    Call it in the serving process before the workers spawn (an ``@bentoml.on_deployment`` hook).
    """
    os.environ[name] = value


# --------------------------------------------------------------------------- 7. bulk histogram


def observe_many(histogram: Any, values: np.ndarray) -> None:
    """``histogram.observe(v)`` for every ``v`` in ``values``, with one write per bucket.

    ``histogram`` is a labelled ``prometheus_client.Histogram`` child. Like ``observe``, each
    value counts in the first bucket whose upper bound is >= the value (buckets are stored
    non-cumulatively and summed when collected).
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    if values.size == 0:
        return
    bounds = np.asarray(histogram._upper_bounds, dtype=np.float64)
    counts = np.bincount(np.searchsorted(bounds, values, side="left"), minlength=len(bounds))
    histogram._sum.inc(float(values.sum()))
    for bucket, count in zip(histogram._buckets, counts.tolist(), strict=False):
        if count:
            bucket.inc(count)


def observe_total(summary: Any, count: int, total: float) -> None:
    """``summary.observe(v)`` for ``count`` values summing to ``total``: two writes, however
    many values (``summary`` is a labelled ``prometheus_client.Summary`` child)."""
    if count:
        summary._count.inc(count)
        summary._sum.inc(total)


# --------------------------------------------------------------------------- 8. uvicorn listeners


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


# --------------------------------------------------------------------------- 9. uvicorn edge


def wrap_served_app(server: Any, wrap: Callable[[Any], Any]) -> None:
    """Serve ``wrap(app)`` instead of the ASGI app a ``uvicorn.Server`` was configured with.

    Call from a ``starting`` hook (:func:`install_listener_hooks`): the config is loaded, and the
    lifespan and every connection protocol read ``config.loaded_app`` only after it.
    """
    server.config.loaded_app = wrap(server.config.loaded_app)


class _ConnectionControl:
    """What a connection guard may do to its connection (see :func:`guard_connections`)."""

    __slots__ = ("_protocol",)

    def __init__(self, protocol: Any) -> None:
        self._protocol = protocol

    def refuse(self, status: int, message: str) -> None:
        """Answer ``status`` with a plain-text ``message`` and close the connection; just close
        it if a response is already being written (answering would corrupt it)."""
        protocol = self._protocol
        transport = protocol.transport
        if transport is None or transport.is_closing():
            return
        cycle = protocol.cycle
        if cycle is not None and cycle.response_started and not cycle.response_complete:
            transport.close()
            return
        from uvicorn.protocols.http.httptools_impl import STATUS_LINE

        body = message.encode("ascii", "replace")
        head = [STATUS_LINE[status]]
        for name, value in protocol.server_state.default_headers:
            head.extend([name, b": ", value, b"\r\n"])
        head.extend(
            [
                b"content-type: text/plain; charset=utf-8\r\n",
                b"content-length: " + str(len(body)).encode("ascii") + b"\r\n",
                b"connection: close\r\n\r\n",
                body,
            ]
        )
        transport.write(b"".join(head))
        transport.close()

    def close(self) -> None:
        """Close the connection without an answer."""
        transport = self._protocol.transport
        if transport is not None and not transport.is_closing():
            transport.close()

    def response_started(self) -> bool:
        """Whether the answer to the request being read has begun (the app did not wait for
        its body)."""
        cycle = self._protocol.cycle
        return bool(cycle is not None and cycle.response_started)

    def reading_paused(self) -> bool:
        """Whether uvicorn stopped reading because the app has not consumed the body yet."""
        flow = self._protocol.flow
        return bool(flow is not None and flow.read_paused)

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> Any:
        """``loop.call_later`` on the connection's event loop (returns a cancellable handle)."""
        return self._protocol.loop.call_later(delay_s, callback)


class _EdgeRefusal(Exception):
    """Raised from a parser callback to stop httptools parsing a refused request."""


def guard_connections(server: Any, make_guard: Callable[[Any], Any]) -> None:
    """Serve every connection of a ``uvicorn.Server`` with a guarded httptools protocol.

    ``make_guard(control)`` is called once per connection with a control object
    (``refuse(status, message)``, ``close()``, ``response_started()``, ``reading_paused()``,
    ``call_later(delay, fn)``)
    and returns the guard the protocol reports to: ``opened()``, ``closed()``,
    ``head_room() -> int | None`` (bytes the current header block may still take; None when no
    header block is being read), ``receiving(n)``, ``fed()``, ``message_begin()``,
    ``url(n) -> refusal | None``, ``headers_too_large() -> refusal`` (also for trailer fields and for framing bytes past
    ``head_limit()`` in a body), ``headers_complete() ->
    bool`` (False: close after this response), ``body()``, ``message_complete()``,
    ``invalid()``. A refusal has ``status`` and ``message``. Call from a ``starting`` hook;
    connections ``serving.accept`` hands over get the same protocol, since
    :func:`connection_protocol_factory` reads ``config.http_protocol_class``.
    """
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    base = server.config.http_protocol_class
    if not (isinstance(base, type) and issubclass(base, HttpToolsProtocol)):
        raise FrameworkDriftError(
            f"uvicorn serves with {base!r}, not httptools: the connection guard needs httptools"
        )
    server.config.http_protocol_class = _guarded_protocol(base, make_guard)


def _guarded_protocol(base: type, make_guard: Callable[[Any], Any]) -> type:
    class GuardedHttpToolsProtocol(base):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.edge_guard = make_guard(_ConnectionControl(self))
            self._edge_refusal: Any = None
            # Bytes fed after a header block vs body bytes httptools delivered: the difference
            # (chunk framing, trailers) is what it may be buffering outside any callback.
            self._edge_after_head: int | None = None
            self._edge_body_bytes = 0

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self.edge_guard.opened()

        def connection_lost(self, exc: Exception | None) -> None:
            self.edge_guard.closed()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            room = self.edge_guard.head_room()
            if room is not None and len(data) > room:
                # Feed the header block only up to its limit: httptools buffers an unfinished
                # header line itself, so checking after the feed would let it grow a whole read.
                head, data = data[:room], data[room:]
                if head:
                    self.edge_guard.receiving(len(head))
                    super().data_received(head)
                if self.transport.is_closing():
                    return
                if self.edge_guard.head_room() is not None:
                    refusal = self.edge_guard.headers_too_large()
                    _ConnectionControl(self).refuse(refusal.status, refusal.message)
                    return
            self.edge_guard.receiving(len(data))
            if self._edge_after_head is not None:
                self._edge_after_head += len(data)
            super().data_received(data)
            self.edge_guard.fed()
            if (
                self._edge_after_head is not None
                and self._edge_after_head - self._edge_body_bytes > self.edge_guard.head_limit()
                and not self.transport.is_closing()
            ):
                # Trailers or chunk framing past the header limit (an endless trailer line is
                # buffered inside httptools and never reaches a callback).
                refusal = self.edge_guard.headers_too_large()
                _ConnectionControl(self).refuse(refusal.status, refusal.message)

        def send_400_response(self, msg: str) -> None:
            refusal, self._edge_refusal = self._edge_refusal, None
            if refusal is None:
                self.edge_guard.invalid()
                super().send_400_response(msg)
            else:
                _ConnectionControl(self).refuse(refusal.status, refusal.message)

        def on_message_begin(self) -> None:
            self.edge_guard.message_begin()
            super().on_message_begin()

        def on_url(self, url: bytes) -> None:
            refusal = self.edge_guard.url(len(url))
            if refusal is not None:
                self._edge_refusal = refusal
                raise _EdgeRefusal(refusal.message)
            super().on_url(url)

        def on_header(self, name: bytes, value: bytes) -> None:
            if self._edge_after_head is not None:
                # A trailer field: uvicorn would append it to the request's headers, unbounded.
                self._edge_refusal = self.edge_guard.headers_too_large()
                raise _EdgeRefusal(self._edge_refusal.message)
            super().on_header(name, value)

        def on_headers_complete(self) -> None:
            self._edge_after_head, self._edge_body_bytes = 0, 0
            keep_alive = self.edge_guard.headers_complete()
            cycle = self.cycle
            super().on_headers_complete()
            if not keep_alive and self.cycle is not cycle:
                self.cycle.keep_alive = False

        def on_body(self, body: bytes) -> None:
            self._edge_body_bytes += len(body)
            self.edge_guard.body()
            super().on_body(body)

        def on_message_complete(self) -> None:
            self._edge_after_head = None
            self.edge_guard.message_complete()
            super().on_message_complete()

    return GuardedHttpToolsProtocol


# --------------------------------------------------------------------------- 10. BentoML's routes

BENTOML_FIXED_ROUTES = (
    "/",
    "/docs.json",
    "/schema.json",
    "/metrics",
    "/livez",
    "/readyz",
    "/healthz",
)
"""Routes BentoML 1.4's service app adds beside the APIs (``_bentoml_impl.server.app``,
``bentoml._internal.server.base_app``); ``/static_content/<file>`` comes on top."""


def bentoml_fixed_paths() -> frozenset[str]:
    """Every path BentoML serves by itself: its fixed routes and each bundled static file."""
    from bentoml._internal import server as bentoml_server

    static = Path(bentoml_server.__file__).parent / "static_content"
    files = (f"/static_content/{p.relative_to(static).as_posix()}" for p in static.rglob("*"))
    return frozenset(BENTOML_FIXED_ROUTES) | frozenset(
        path for path in files if (static / path.removeprefix("/static_content/")).is_file()
    )


# --------------------------------------------------------------------------- 11. Swagger UI files

SWAGGER_UI_FILES = ("swagger-ui-bundle.js", "swagger-ui.css")
"""The Swagger UI files the docs page loads."""


def swagger_ui_assets() -> str:
    """The URL prefix (``/static_content/``) under which BentoML serves its bundled Swagger UI.

    Raises ``FrameworkDriftError`` if BentoML no longer ships one of ``SWAGGER_UI_FILES`` there
    (its service app mounts that folder unless the opt-in ``new_index`` feature is enabled).
    """
    from bentoml._internal import server as bentoml_server

    static = Path(bentoml_server.__file__).parent / "static_content"
    missing = [name for name in SWAGGER_UI_FILES if not (static / name).is_file()]
    if missing:
        raise FrameworkDriftError(f"BentoML no longer bundles {missing} in {static}")
    return "/static_content/"


# --------------------------------------------------------------------------- 12. request timers


def release_request_timers() -> None:
    """Make BentoML's ``TimeoutMiddleware`` cancel its timer once the response has started.

    Same answers as BentoML's own (a 504 JSON error when nothing was sent within the timeout);
    only the timer no longer outlives the request by up to the timeout. Idempotent.
    """
    from bentoml._internal.server.http.traffic import TimeoutMiddleware

    if getattr(TimeoutMiddleware.__call__, "__delivery_eta_patched__", False):
        return
    original = TimeoutMiddleware.__call__

    async def call(self: Any, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await original(self, scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        timer = loop.call_later(self.timeout, self._set_timer_out, waiter)

        async def started(message: Any) -> None:
            if not waiter.done():
                waiter.set_result(None)
            await send(message)

        handled = asyncio.ensure_future(self.app(scope, receive, started))
        try:
            await waiter
        except TimeoutError:
            if handled.cancel():
                from starlette.responses import JSONResponse

                message = f"Not able to process the request in {self.timeout} seconds"
                await JSONResponse({"error": message}, status_code=504)(scope, receive, send)
            return
        finally:
            timer.cancel()
        await handled

    call.__delivery_eta_patched__ = True  # type: ignore[attr-defined]
    TimeoutMiddleware.__call__ = call  # type: ignore[method-assign]
