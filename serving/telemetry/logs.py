"""Logging: JSON lines carrying the request id; client errors never log a traceback."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from bentoml.exceptions import BentoMLException
from pydantic import ValidationError
from pythonjsonlogger.json import JsonFormatter

from framework_internals import bentoml_request_error_logger
from serving.schema import MAX_LISTED_ERRORS
from serving.telemetry.labels import NO_FIELDS, FieldLabels
from serving.telemetry.request_notes import annotate, current_request, replace_error_body

OUR_LOGGERS = ("delivery_eta", "models", "serving")


MAX_LOC_PART_CHARS = 64
"""Longest part of an error's location echoed back (an unknown key may be 900 KB long)."""
MAX_MESSAGE_CHARS = 200
"""Longest error message echoed back."""


def _shortened(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\N{HORIZONTAL ELLIPSIS}"


def _listed_error(error: Mapping[str, Any]) -> dict[str, Any]:
    """One of BentoML's 400 ``detail`` entries, its client-chosen parts shortened."""
    listed = dict(error)
    listed["loc"] = [
        _shortened(part, MAX_LOC_PART_CHARS) if isinstance(part, str) else part
        for part in error["loc"]
    ]
    listed["msg"] = _shortened(str(error["msg"]), MAX_MESSAGE_CHARS)
    return listed


def validation_error_answer(
    exc: ValidationError, labels: FieldLabels = NO_FIELDS
) -> tuple[bytes, str, set[str]]:
    """What one invalid request costs: the 400 body, the log line's ``error`` text and the
    ``field`` labels (of ``labels``) to count, each bounded whatever the number of bad fields.

    The body keeps BentoML's shape (``error``, naming the request body rather than BentoML's
    wrapper model, and ``detail``, the entries ``exc.errors()`` gives without input and
    context) with at most ``MAX_LISTED_ERRORS`` entries, plus ``error_count``, the number of
    errors in all.
    """
    errors = exc.errors(include_context=False, include_input=False)
    listed = [_listed_error(error) for error in errors[:MAX_LISTED_ERRORS]]
    count = len(errors)
    body = {
        # Not pydantic's "for <model>": the model is BentoML's wrapper (OrderIODescriptor, Input).
        "error": f"{count} validation error{'' if count == 1 else 's'} in the request body",
        "detail": listed,
        "error_count": count,
    }
    summary = "; ".join(
        f"{'.'.join(str(part) for part in error['loc']) or 'body'}: {error['msg']}"
        for error in listed
    )
    if count > len(listed):
        summary += f"; and {count - len(listed)} more"
    fields = {labels.of_location(tuple(error["loc"])) for error in errors}
    return json.dumps(body, separators=(",", ":")).encode(), summary, fields


class ClientErrorFilter(logging.Filter):
    """Turn BentoML's traceback log of a client error into fields of the request's own line.

    The request log line (see ``request_context``) then carries ``error`` and the metrics
    count the invalid fields; the ERROR-with-traceback record is dropped. BentoML logs before
    it builds its 400 answer, which would echo every bad field: the request context is told to
    send the bounded answer of :func:`validation_error_answer` instead.
    """

    def __init__(self) -> None:
        super().__init__()
        self.labels = NO_FIELDS
        """The served API's field labels (:func:`use_field_labels`, once the model is loaded)."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, ValidationError):
            body, summary, fields = validation_error_answer(exc, self.labels)
            annotate(error=summary, invalid_fields=fields)
            replace_error_body(400, body)
            return False
        if isinstance(exc, BentoMLException) and int(exc.error_code) < 500:
            annotate(error=str(exc))  # e.g. 415 for a pickle body
            return False
        return True


MAX_LINE_BYTES = 8192
"""Longest log line. Container runtimes split lines over 16 KiB into partial records (CRI,
Docker's json-file) that log pipelines then keep as broken JSON; half that leaves room for the
runtime's prefix, and a normal request line is ~400 bytes."""
MAX_FIELD_CHARS = 2048
"""Longest string field before the line as a whole is measured (tracebacks keep their end)."""
_TAIL_FIELDS = frozenset({"exc_info", "stack_info"})  # a traceback's end names the error


def _cut(name: str, value: Any, limit: int) -> Any:
    """``value`` shortened to ``limit`` characters (non-strings: their JSON text, if longer)."""
    if type(value) is str and len(value) <= limit:  # most fields: checked first
        return value
    if isinstance(value, bool | int | float) or value is None:
        return value
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    if len(text) <= limit:
        return value
    if name in _TAIL_FIELDS:
        return "\N{HORIZONTAL ELLIPSIS}" + text[len(text) - limit + 1 :]
    return text[: limit - 1] + "\N{HORIZONTAL ELLIPSIS}"


class BoundedJsonFormatter(JsonFormatter):
    """One JSON object per line, at most ``MAX_LINE_BYTES`` long: every field is cut to
    ``MAX_FIELD_CHARS``, then, while the line is still too long (escapes can make a character
    six bytes), all fields are cut shorter and ``truncated`` is set."""

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        return {name: _cut(name, value, MAX_FIELD_CHARS) for name, value in log_data.items()}

    def jsonify_log_record(self, log_data: dict[str, Any]) -> str:
        line = super().jsonify_log_record(log_data)
        limit = MAX_FIELD_CHARS
        while len(line) > MAX_LINE_BYTES and limit > 16:  # ensure_ascii: characters are bytes
            limit //= 4
            log_data = {name: _cut(name, value, limit) for name, value in log_data.items()}
            log_data["truncated"] = True
            line = super().jsonify_log_record(log_data)
        return line

    def request_line(
        self, level: int, logger_name: str, request_id: str, fields: Mapping[str, Any]
    ) -> str | None:
        """The line :meth:`format` writes for ``logger.log(level, "request", extra=fields)`` in
        a request, built without a ``LogRecord``; None if ``fields`` would not be extras there
        (a reserved or private name), so the caller takes the ordinary path."""
        if not self._plain_extras(fields):
            return None
        # The order format() gives: the required fields, the extras, then the timestamp.
        log_data: dict[str, Any] = {
            "level": logging.getLevelName(level),
            "logger": logger_name,
            "message": "request",
            "request_id": request_id,
            **fields,
            # The text the encoder makes of the record's datetime, made here once.
            "timestamp": datetime.fromtimestamp(time.time(), tz=UTC).isoformat(),
        }
        return self.jsonify_log_record(self.process_log_record(log_data))

    def _plain_extras(self, fields: Mapping[str, Any]) -> bool:
        return (
            self._required_fields == _REQUIRED_FIELDS
            and self.rename_fields == _RENAMED
            and self.timestamp is True
            and not self.defaults
            and not self.static_fields
            and not self._skip_fields.intersection(fields)
            and not any(name.startswith("_") for name in fields)
        )


_REQUIRED_FIELDS = ["levelname", "name", "message", "request_id"]
_RENAMED = {"levelname": "level", "name": "logger"}


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
        BoundedJsonFormatter(
            "".join(f"{{{name}}}" for name in _REQUIRED_FIELDS),
            style="{",
            timestamp=True,  # ISO 8601, UTC
            rename_fields=dict(_RENAMED),
        )
    )
    handler.addFilter(RequestIdFilter())
    for name in OUR_LOGGERS:
        our = logging.getLogger(name)
        our.handlers = [handler]
        our.setLevel(level)
        our.propagate = False
    # BentoML 1.4 logs every failed request there at ERROR with a traceback, client mistakes too.
    _client_error_filter()


def log_request_line(
    logger: logging.Logger, level: int, request_id: str, fields: Mapping[str, Any]
) -> None:
    """Write the request's log line: what ``logger.log(level, "request", extra=fields)`` writes
    through :func:`configure_logging`'s handler, byte for byte, at a fraction of the cost.

    Once per request: the ordinary path builds a ``LogRecord``, walks the stack for its caller,
    runs the filters and scans the record's attributes for extras, which together cost more than
    the line's JSON itself. When the logger is not set up by :func:`configure_logging` (a test's
    or an embedding application's handlers), the ordinary path is taken.
    """
    if not logger.isEnabledFor(level):
        return
    handlers = _handlers_of(logger)
    handler = handlers[0] if len(handlers) == 1 else None
    line = None
    if (
        isinstance(handler, logging.StreamHandler)
        and isinstance(handler.formatter, BoundedJsonFormatter)
        and level >= handler.level
        and not logger.filters
        and [type(installed) for installed in handler.filters] == [RequestIdFilter]
    ):
        line = handler.formatter.request_line(level, logger.name, request_id, fields)
    if not isinstance(handler, logging.StreamHandler) or line is None:
        logger.log(level, "request", extra=dict(fields))
        return
    with handler.lock:  # type: ignore[union-attr]  # a StreamHandler always has one
        try:
            handler.stream.write(line + handler.terminator)
            handler.flush()
        except Exception:
            handler.handleError(logger.makeRecord(logger.name, level, "", 0, "request", (), None))


def _handlers_of(logger: logging.Logger) -> list[logging.Handler]:
    # The handlers a record of ``logger`` reaches, as Logger.callHandlers walks them.
    handlers: list[logging.Handler] = []
    current: logging.Logger | None = logger
    while current is not None:
        handlers.extend(current.handlers)
        current = current.parent if current.propagate else None
    return handlers


def _client_error_filter() -> ClientErrorFilter:
    bentoml_logger = bentoml_request_error_logger()
    for installed in bentoml_logger.filters:
        if isinstance(installed, ClientErrorFilter):
            return installed
    created = ClientErrorFilter()
    bentoml_logger.addFilter(created)
    return created


def use_field_labels(labels: FieldLabels) -> None:
    """Count invalid fields under the served API's field names (the request models are built
    from the model's contract, after logging is configured)."""
    _client_error_filter().labels = labels
