"""The refusals metric: requests and connections the HTTP edge ended, by reason."""

from __future__ import annotations

import bentoml

from serving.server.edge.connection import REFUSAL_REASONS

HTTP_REFUSALS = bentoml.metrics.Counter(
    name="delivery_eta_http_refusals_total",
    documentation="Requests or connections refused or closed by the HTTP edge, by reason",
    labelnames=["reason"],
)


def count_refusal(reason: str) -> None:
    """Count one refusal; ``reason`` must be one of ``REFUSAL_REASONS`` (a fixed label set)."""
    if reason not in REFUSAL_REASONS:
        raise ValueError(f"unknown refusal reason {reason!r}")
    HTTP_REFUSALS.labels(reason=reason).inc()


def publish_reasons() -> None:
    """Create every reason's series at 0, so rates work from the first refusal."""
    for reason in REFUSAL_REASONS:
        HTTP_REFUSALS.labels(reason=reason)
