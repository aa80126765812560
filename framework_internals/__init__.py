"""The one door to private BentoML and uvicorn APIs: one function per touch-point.

Everything else in the project uses public APIs only. Each function below depends on something
BentoML or uvicorn does not promise to keep; ``VERIFIED_WITH`` names the versions it was checked
against, and ``tests/test_framework_internals.py`` fails, naming this module, as soon as the
installed versions differ or a touch-point's shape changes. On an upgrade: re-read each
touch-point's source, re-run that test, then update ``VERIFIED_WITH`` (``versions.py``).

Everything outside imports from this package's top level only: ``from framework_internals import
X``. The modules behind it hold one concern each: ``versions`` (the pinned versions and the drift
check), ``batching`` (1), ``uvicorn_server`` (2, 8 and the app half of 9), ``bentoml_app``
(3, 10, 11, 14, 15), ``model_store`` (4, 5), ``workers`` (6, 12), ``prometheus_bulk`` (7), ``connection_guard``
(9), ``request_timeout`` (13) and ``request_metrics`` (16).

Touch-points (why no public API does the job):

1. ``batch_dispatcher``: BentoML's ``CorkDispatcher`` + ``Optimizer`` (``bentoml._internal.marshal``),
   the adaptive-batching algorithm of batchable APIs. A batchable API cannot be called in-process:
   BentoML routes a service's call to its own batchable method over HTTP again. Its
   ``_get_inputs`` is overridden so that a request of a whole batch or more is one call, uncut,
   and its ``controller`` so that it waits for a running call instead of polling every 1 ms.
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
   connection accepted elsewhere; ``serving.server.accept`` needs both. A ``starting`` hook runs before
   the original ``startup``, while the app and protocol uvicorn will serve can still be swapped.
9. ``wrap_served_app`` + ``guard_connections``: replace ``config.loaded_app`` (the ASGI app
   uvicorn serves, outside BentoML's own middlewares, which ``add_asgi_middleware`` cannot reach)
   and ``config.http_protocol_class`` with a subclass of httptools' ``HttpToolsProtocol`` that
   reports its parser callbacks to a per-connection guard (``serving.server.edge``). uvicorn has no
   header-size, request-target or header/body-read timeout settings, and BentoML's request
   metrics label the raw path before any middleware of ours runs.
10. ``bentoml_fixed_paths``: the routes BentoML itself serves beside the service's APIs (probes,
   metrics, docs, its bundled static files), for ``serving.server.edge.paths``.
11. ``swagger_ui_assets``: the URL prefix under which BentoML serves the Swagger UI files it
   bundles (``/static_content/``), for the service's own docs page (``serving.server.middleware.docs_page``):
   BentoML's page cannot be customised, and no PyPI package in the lock ships Swagger UI.
12. ``bentoml_worker_processes`` / ``is_bentoml_worker``: the module BentoML 1.4 starts each service
   worker with (``_bentoml_impl.worker.service``). BentoML has no public list of its worker
   processes; load checks and tests that measure or kill a worker find it by that command line.
13. ``release_request_timers``: a class-level replacement of BentoML's ``TimeoutMiddleware``
   ``__call__`` (``bentoml._internal.server.http.traffic``) that cancels its per-request timer
   once the response starts. BentoML's never cancels it, so each request's timer, waiter future
   and context stay alive for ``traffic.timeout`` (30 s): ~30k objects per worker at 1k req/s,
   which every full collection of the garbage collector then scans (docs/performance.md).
14. ``bind_api_methods``: stores each API method of the service instance, bound once through
   BentoML's ``APIMethod.__get__`` (``_bentoml_sdk.method``), in the instance's ``__dict__``.
   BentoML's endpoint looks the method up on every request and the descriptor rebuilds the
   callable each time (``inspect.signature``, ``functools.wraps``): ~4 % of a request's CPU.
15. ``prebind_response_headers``: a class-level replacement of BentoML's
   ``ServiceAppFactory._add_response_headers`` (``_bentoml_impl.server.app``) that calls the
   undecorated method with its injected ``logging_format`` resolved once; ``simple_di.inject``
   bound the signature and resolved it from the container on every response.
16. ``start_request_duration_series``: BentoML's request-latency histogram
   (``bentoml._internal.server.http.instruments``: its name, help text, label names and the
   container's ``duration_buckets``) written at 0 for every API route as a worker starts, like
   BentoML's own counter beside it; BentoML creates a route's histogram only at its first
   request, so ``rate()`` missed what a pod answered before its first scrape.
"""

from framework_internals.batching import batch_dispatcher, capped_optimizer
from framework_internals.bentoml_app import (
    BENTOML_FIXED_ROUTES,
    BENTOML_REQUEST_LOGGER,
    SWAGGER_UI_FILES,
    bentoml_fixed_paths,
    bentoml_request_error_logger,
    bind_api_methods,
    prebind_response_headers,
    swagger_ui_assets,
)
from framework_internals.connection_guard import guard_connections
from framework_internals.model_store import use_model_store, write_model_labels
from framework_internals.prometheus_bulk import observe_many, observe_total
from framework_internals.request_metrics import (
    RESPONSE_CODES_AT_START,
    start_request_duration_series,
)
from framework_internals.request_timeout import release_request_timers
from framework_internals.uvicorn_server import (
    ExitHandler,
    connection_protocol_factory,
    install_listener_hooks,
    install_sigterm_handler,
    listening_sockets,
    wrap_served_app,
)
from framework_internals.versions import VERIFIED_WITH, FrameworkDriftError, version_drift
from framework_internals.workers import (
    BENTOML_WORKER_MODULE,
    bentoml_worker_processes,
    is_bentoml_worker,
    pin_environment_for_workers,
)

__all__ = [
    "BENTOML_FIXED_ROUTES",
    "BENTOML_REQUEST_LOGGER",
    "BENTOML_WORKER_MODULE",
    "RESPONSE_CODES_AT_START",
    "SWAGGER_UI_FILES",
    "VERIFIED_WITH",
    "ExitHandler",
    "FrameworkDriftError",
    "batch_dispatcher",
    "bentoml_fixed_paths",
    "bentoml_request_error_logger",
    "bentoml_worker_processes",
    "bind_api_methods",
    "capped_optimizer",
    "connection_protocol_factory",
    "guard_connections",
    "install_listener_hooks",
    "install_sigterm_handler",
    "is_bentoml_worker",
    "listening_sockets",
    "observe_many",
    "observe_total",
    "pin_environment_for_workers",
    "prebind_response_headers",
    "release_request_timers",
    "start_request_duration_series",
    "swagger_ui_assets",
    "use_model_store",
    "version_drift",
    "wrap_served_app",
    "write_model_labels",
]
