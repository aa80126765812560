"""The fixed label sets of the service's request metrics, and the mapping of what a client
sent (a path, a JSON key) onto them.

A label value a client chooses is a new time series per value: in every worker's metric file,
in each scrape and in Prometheus. So client-derived labels take only the values listed here;
everything else is counted under ``unmatched`` / ``other`` (docs/security.md). The field names
are the served contract's: :class:`FieldLabels` is built once at start-up from the request
models ``serving.schema`` made of it.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel

from serving.inference_protocol.paths import ROUTE_TEMPLATES

ROUTE_LABELS = frozenset({"/v1/predict", "/v1/predict/batch", "/v1/feedback"})
"""The service's /v1 routes (checked against the served OpenAPI document by the tests)."""
UNMATCHED_ROUTE = "unmatched"
"""The ``route`` label of a /v1 request that matched no route."""

BATCH_FIELD = "orders"
"""The batch route's one body field (``predict_batch``'s parameter in service.py)."""
BODY_FIELD = "body"
"""An error about the body as a whole (malformed JSON, not an object)."""
OTHER_FIELD = "other"
"""The ``field`` label of an invalid field the API does not have (an unknown key)."""


PROTOCOL_ROUTE_LABELS = ROUTE_TEMPLATES
"""The v2 routes, by template (``serving.inference_protocol.paths``)."""


def route_label(route: str) -> str:
    """``route`` itself if it is one of the service's /v1 routes or v2 route templates, else
    ``unmatched``."""
    return route if route in ROUTE_LABELS or route in PROTOCOL_ROUTE_LABELS else UNMATCHED_ROUTE


@dataclass(frozen=True)
class FieldLabels:
    """The ``field`` label values: every field a /v1 request body may have, plus ``orders``,
    ``body`` and ``other``."""

    names: frozenset[str]

    @classmethod
    def of(cls, *request_models: type[BaseModel]) -> FieldLabels:
        """The labels of these request models' fields (the served order and feedback models)."""
        fields = {name for model in request_models for name in model.model_fields}
        return cls(frozenset({*fields, BATCH_FIELD, BODY_FIELD}))

    @property
    def values(self) -> frozenset[str]:
        """Every value the ``field`` label can take."""
        return self.names | {OTHER_FIELD}

    def known(self, name: str) -> str:
        """``name`` if it is a field of the API, else ``other``."""
        return name if name in self.names else OTHER_FIELD

    def of_location(self, location: tuple[int | str, ...]) -> str:
        """The label of a validation error at ``location`` (pydantic's ``loc``): its last
        named part (``("orders", 3, <field>)`` -> the field), ``body`` for the body as a whole,
        ``other`` for a name the API does not have."""
        for part in reversed(location):
            if isinstance(part, str):
                return self.known(part)
        return BODY_FIELD


NO_FIELDS = FieldLabels.of()
"""Before the served contract is known (start-up), every field name counts as ``other``."""

VALIDATION_CATEGORY = "validation"
"""The ``category`` of ``delivery_eta_errors_total`` for a request refused as invalid."""
