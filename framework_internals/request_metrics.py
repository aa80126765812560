"""Touch-point 16: BentoML's request-latency histogram (``bentoml_service_request_duration_seconds``
of ``RunnerTrafficMetricsMiddleware``, ``bentoml._internal.server.http.instruments``), started at 0.

BentoML starts its request *counter* at 0 for every API route (codes 200 and 500) "to
facilitate rate calculation", but not the latency histogram beside it: a route's histogram
appears at its first request, so ``rate()`` never counts what a pod answered before its first
scrape, and a short burst on a fresh pod gives the latency panels no data at all (found by
``make cluster-test``). This writes the same children at 0 into the worker's multiprocess files.
"""

from __future__ import annotations

from collections.abc import Sequence

RESPONSE_CODES_AT_START = (200, 500)
"""The codes BentoML starts its request counter at: each API route's histogram starts with them."""

_NAME = "request_duration_seconds"
_DOCUMENTATION = "runner RPC duration in seconds"
_LABELS = ["endpoint", "service_name", "service_version", "http_response_code", "runner_name"]


def start_request_duration_series(routes: Sequence[str] | None = None) -> int:
    """Create BentoML's request-duration histogram at 0 for each of this worker's API routes
    (``server_context.service_routes`` unless ``routes`` is given; the namespace of the
    server's metrics config, like the middleware's) and each code of
    :data:`RESPONSE_CODES_AT_START`; returns how many series it started.

    Not registered in a registry (BentoML registers its own, later, under the same name): the
    children only write their zero values to the multiprocess files the ``/metrics`` collector
    merges, with the labels BentoML's middleware gives its observations.
    """
    import prometheus_client
    from bentoml._internal.configuration.containers import BentoMLContainer
    from bentoml._internal.context import server_context

    histogram = prometheus_client.Histogram(
        _NAME,
        _DOCUMENTATION,
        labelnames=_LABELS,
        namespace=BentoMLContainer.api_server_config.metrics.namespace.get(),
        buckets=BentoMLContainer.duration_buckets.get(),
        registry=None,
    )
    started = 0
    for endpoint in server_context.service_routes if routes is None else routes:
        for code in RESPONSE_CODES_AT_START:
            histogram.labels(
                endpoint=endpoint,
                service_name=server_context.bento_name,
                service_version=server_context.bento_version,
                http_response_code=code,
                runner_name=server_context.service_name,
            )
            started += 1
    return started
