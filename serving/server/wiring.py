"""How ``service.py`` puts the server wing around the service, in two calls.

:func:`install_server` runs first, as a worker imports the service (before the model loads and
before uvicorn starts): the drain-first SIGTERM handling, greedy accepting and the open-files
limit. :func:`wrap_service` runs once the service class exists (the edge needs its routes): the
HTTP edge around the app uvicorn serves, then the ASGI middleware in front of BentoML's app.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import bentoml
from pydantic import BaseModel

from framework_internals import (
    bentoml_fixed_paths,
    prebind_response_headers,
    release_request_timers,
    swagger_ui_assets,
)
from serving.server import accept, drain, edge
from serving.server.edge.connection import EdgeLimits
from serving.server.edge.paths import known_paths
from serving.server.edge.refusals import count_refusal, publish_reasons
from serving.server.middleware.auth import BearerTokenMiddleware
from serving.server.middleware.body_guard import (
    INFERENCE_PROTOCOL_TYPES,
    JSON_ONLY,
    HttpGuardMiddleware,
)
from serving.server.middleware.docs_page import DocsPageMiddleware, service_info
from serving.server.middleware.draining import DrainingMiddleware
from serving.server.middleware.openapi import OpenAPIDocumentMiddleware
from serving.server.middleware.request_context import RequestContextMiddleware, RequestInfo
from serving.server.middleware.scrape_cache import METRICS_PATH, ScrapeCacheMiddleware
from serving.settings import ServiceSettings

RequestFinished = Callable[[RequestInfo, int, float, str | None], None]
"""Called once per request as its log line is written: (request, status, latency ms, error
category or None)."""


def install_server(settings: ServiceSettings) -> drain.ShutdownState:
    """Set this worker process up for serving: drain on SIGTERM, accept greedily, release
    BentoML's request timers when the response starts, resolve its response-header format once,
    and raise the open-files limit when asked to. Call at service import; returns the drain
    state that readiness and ``/health`` read."""
    shutdown = drain.install(settings.server.shutdown_drain_s)
    accept.install(settings.server.accept_batch, settings.server.workers)
    # BentoML's request timeout kept each request's timer alive 30 s: gen-2 collections stalled a
    # worker for tens of ms every few seconds under sustained load (docs/performance.md).
    release_request_timers()
    # BentoML resolved its response-header format through dependency injection per response.
    prebind_response_headers()
    if settings.server.raise_open_files_limit:
        edge.raise_open_files_limit()
    return shutdown


def wrap_service(
    service: bentoml.Service[Any],
    settings: ServiceSettings,
    *,
    mounted_paths: Iterable[str],
    request_models: Iterable[type[BaseModel]],
    model_tag: str,
    on_request_finished: RequestFinished,
) -> None:
    """Put the HTTP edge and the middleware stack around ``service``.

    ``mounted_paths`` are the paths of apps mounted beside the API routes (the edge collapses
    every other unknown path); ``request_models`` bound the JSON shape the body guard accepts;
    ``model_tag`` names the served model in the OpenAPI document and docs page.
    """
    # Outside all of BentoML's app (its request metrics label raw paths): unknown paths collapse
    # to one label, and every connection is held to the size, time and keep-alive limits.
    edge.install(
        EdgeLimits(
            max_request_target_bytes=settings.server.max_request_target_bytes,
            max_header_bytes=settings.server.max_header_bytes,
            header_timeout_s=settings.server.header_timeout_s,
            body_timeout_s=settings.server.body_timeout_s,
            max_requests_per_connection=settings.server.max_requests_per_connection,
        ),
        known_paths(
            bentoml_fixed_paths(),
            (api.route for api in service.apis.values()),
            mounted_paths,
        ),
        count_refusal,
    )
    publish_reasons()

    # First added = outermost: the request context (id, log line, metrics) also covers the 401s
    # and the guard's 413/415 answers, and while draining every answer closes its connection.
    service.add_asgi_middleware(DrainingMiddleware)
    service.add_asgi_middleware(
        RequestContextMiddleware,
        on_complete=on_request_finished,
    )
    # Before anything reads a body or renders metrics: a 401 costs nothing (docs/security.md).
    service.add_asgi_middleware(
        BearerTokenMiddleware,
        tokens={
            "/v1/feedback": settings.security.feedback_token,
            METRICS_PATH: settings.security.metrics_token,
        },
    )
    service.add_asgi_middleware(
        ScrapeCacheMiddleware,
        max_age_s=settings.telemetry.metrics_cache_s,
    )
    service.add_asgi_middleware(
        HttpGuardMiddleware,
        max_body_bytes=settings.server.max_body_bytes,
        # No valid /v1 body has an object with more keys than a request model has fields (v2
        # bodies are not validated by pydantic: not checked, see body_guard).
        # /v2 (the inference protocol): JSON, or JSON then binary tensors, or unlabelled.
        media_types={"/v1/": JSON_ONLY, "/v2/": INFERENCE_PROTOCOL_TYPES},
        max_object_keys=max(len(model.model_fields) for model in request_models),
        shape_checked=("/v1/",),
        refused=count_refusal,
    )

    def info() -> dict[str, Any]:
        # Called as the worker's app starts: BentoML sets the bento version after the import.
        return service_info(model_tag, bentoml.server_context.bento_version)

    # /docs.json: BentoML's generated document, corrected once at start-up (middleware/openapi.py).
    service.add_asgi_middleware(
        OpenAPIDocumentMiddleware,
        spec=lambda: service.openapi_spec.asdict(),
        info=info,
    )
    # /: the service's own docs page over that document, nothing loaded from outside the host.
    service.add_asgi_middleware(
        DocsPageMiddleware,
        info=info,
        assets=swagger_ui_assets(),
    )
