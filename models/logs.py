"""Logging set-up: client errors are one WARNING line, not an ERROR with a traceback."""

from __future__ import annotations

import logging

from bentoml.exceptions import BentoMLException
from pydantic import ValidationError

# BentoML 1.4 logs every failed request here with ``exc_info``, client mistakes included.
BENTOML_REQUEST_LOGGER = "bentoml._internal.server.http_app"
CLIENT_ERROR_LOGGER = "delivery_eta.client_errors"


def _field_summary(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        location = ".".join(str(p) for p in error["loc"]) or "body"
        parts.append(f"{location}: {error['msg']}")
    return "; ".join(parts)


class ClientErrorFilter(logging.Filter):
    """Rewrite BentoML's traceback log of a validation failure into one WARNING line."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, ValidationError):
            reason = _field_summary(exc)
        elif isinstance(exc, BentoMLException) and int(exc.error_code) < 500:
            reason = str(exc)  # e.g. 415 for a pickle body
        else:
            return True
        path = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
        record.name = CLIENT_ERROR_LOGGER
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.msg, record.args = "client error: invalid request to %s: %s", (path, reason)
        record.exc_info, record.exc_text = None, None
        return True


def configure_logging(level: str) -> None:
    """Set our loggers' level and install the client-error filter (idempotent)."""
    for name in ("models", "delivery_eta", "service"):
        logging.getLogger(name).setLevel(level)
    bentoml_logger = logging.getLogger(BENTOML_REQUEST_LOGGER)
    if not any(isinstance(f, ClientErrorFilter) for f in bentoml_logger.filters):
        bentoml_logger.addFilter(ClientErrorFilter())
