"""The current request's notes: its id, its route, and the fields code adds for its log line,
in a contextvar. Below both the HTTP middleware (which opens a request's notes and writes its
log line) and the pipeline (which annotates it), so neither has to import the other."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any


@dataclass
class RequestInfo:
    """The current request's id and the fields handlers add for its log line."""

    request_id: str
    route: str
    fields: dict[str, Any] = field(default_factory=dict)
    replacement: tuple[int, bytes] | None = None
    """(status, JSON body) to send instead of the app's own answer with that status."""


_current: ContextVar[RequestInfo | None] = ContextVar("delivery_eta_request", default=None)


def current_request() -> RequestInfo | None:
    """The request being handled in this context, if any."""
    return _current.get()


@contextlib.contextmanager
def request_scope(request_id: str, route: str) -> Iterator[RequestInfo]:
    """Make a new request current for the block (the middleware opens one per HTTP request)."""
    info = RequestInfo(request_id=request_id, route=route)
    token = _current.set(info)
    try:
        yield info
    finally:
        _current.reset(token)


def annotate(**fields: Any) -> None:
    """Add fields to the current request's log line (no-op outside a request)."""
    info = _current.get()
    if info is not None:
        info.fields.update(fields)


def replace_error_body(status: int, body: bytes) -> None:
    """Answer the current request with the JSON ``body`` instead of the app's own body, if the
    app answers ``status`` (for an answer built by code we cannot change, e.g. BentoML's 400)."""
    info = _current.get()
    if info is not None:
        info.replacement = (status, body)
