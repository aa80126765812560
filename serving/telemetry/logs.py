"""Logging: JSON lines carrying the request id; client errors never log a traceback."""

from __future__ import annotations

import logging
import sys

from bentoml.exceptions import BentoMLException
from pydantic import ValidationError
from pythonjsonlogger.json import JsonFormatter

from framework_internals import bentoml_request_error_logger
from serving.middleware.request_context import annotate, current_request

OUR_LOGGERS = ("delivery_eta", "models", "serving")


def _field_summary(exc: ValidationError) -> tuple[str, list[str]]:
    parts, fields = [], []
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        location = ".".join(str(p) for p in error["loc"]) or "body"
        parts.append(f"{location}: {error['msg']}")
        # the field name, without list indexes ("orders.3.distance_km" -> "distance_km")
        named = [str(p) for p in error["loc"] if isinstance(p, str)]
        fields.append(named[-1] if named else "body")
    return "; ".join(parts), fields


class ClientErrorFilter(logging.Filter):
    """Turn BentoML's traceback log of a client error into fields of the request's own line.

    The request log line (see ``request_context``) then carries ``error`` and the metrics
    count the invalid fields; the ERROR-with-traceback record is dropped.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, ValidationError):
            summary, fields = _field_summary(exc)
            annotate(error=summary, invalid_fields=fields)
            return False
        if isinstance(exc, BentoMLException) and int(exc.error_code) < 500:
            annotate(error=str(exc))  # e.g. 415 for a pickle body
            return False
        return True


class RequestIdFilter(logging.Filter):
    """Stamp every record with the current request's id (empty outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        info = current_request()
        record.request_id = info.request_id if info else None
        return True


def configure_logging(level: str) -> None:
    """JSON lines on stdout for our loggers, and the client-error filter on BentoML's logger."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        JsonFormatter(
            "{levelname}{name}{message}{request_id}",
            style="{",
            timestamp=True,  # ISO 8601, UTC
            rename_fields={"levelname": "level", "name": "logger"},
        )
    )
    handler.addFilter(RequestIdFilter())
    for name in OUR_LOGGERS:
        our = logging.getLogger(name)
        our.handlers = [handler]
        our.setLevel(level)
        our.propagate = False
    # BentoML 1.4 logs every failed request there at ERROR with a traceback, client mistakes too.
    bentoml_logger = bentoml_request_error_logger()
    if not any(isinstance(f, ClientErrorFilter) for f in bentoml_logger.filters):
        bentoml_logger.addFilter(ClientErrorFilter())
