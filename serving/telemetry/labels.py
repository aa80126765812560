"""The fixed label sets of the service's request metrics, and the mapping of what a client
sent (a path, a JSON key) onto them.

A label value a client chooses is a new time series per value: in every worker's metric file,
in each scrape and in Prometheus. So client-derived labels take only the values listed here;
everything else is counted under ``unmatched`` / ``other`` (docs/security.md).
"""

from __future__ import annotations

from serving.schema import Feedback, Order

ROUTE_LABELS = frozenset({"/v1/predict", "/v1/predict/batch", "/v1/feedback"})
"""The service's /v1 routes (checked against the served OpenAPI document by the tests)."""
UNMATCHED_ROUTE = "unmatched"
"""The ``route`` label of a /v1 request that matched no route."""

BATCH_FIELD = "orders"
"""The batch route's one body field (``predict_batch``'s parameter in service.py)."""
BODY_FIELD = "body"
"""An error about the body as a whole (malformed JSON, not an object)."""
FIELD_LABELS = frozenset({*Order.model_fields, *Feedback.model_fields, BATCH_FIELD, BODY_FIELD})
"""Every field a /v1 request body may have."""
OTHER_FIELD = "other"
"""The ``field`` label of an invalid field the API does not have (an unknown key)."""


def route_label(route: str) -> str:
    """``route`` itself if it is one of the service's /v1 routes, else ``unmatched``."""
    return route if route in ROUTE_LABELS else UNMATCHED_ROUTE


def field_label(location: tuple[int | str, ...]) -> str:
    """The ``field`` label of a validation error at ``location`` (pydantic's ``loc``): its last
    named part (``("orders", 3, "distance_km")`` -> ``distance_km``), ``body`` for the body as
    a whole, ``other`` for a name the API does not have."""
    for part in reversed(location):
        if isinstance(part, str):
            return part if part in FIELD_LABELS else OTHER_FIELD
    return BODY_FIELD
