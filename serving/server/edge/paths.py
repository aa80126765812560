"""Collapse unknown request paths to one value before any metric sees them.

BentoML's request metrics label every request with its raw path, from a middleware that runs
before any of ours: 3,000 unknown paths grew ``/metrics`` from 0.27 to 12 MB. The outermost app
(:class:`KnownPathsApp`, installed by ``serving.server.edge``) rewrites every path outside the known
set to :data:`UNMATCHED`; BentoML then answers 404 and counts it under that one label. The
original path stays in the scope for the request log (:func:`original_path`).
"""

from __future__ import annotations

from collections.abc import Iterable

from serving.server.asgi import ASGIApp, Receive, Scope, Send

UNMATCHED = "/unmatched"
"""The path (and metric label) every unknown path becomes."""
ORIGINAL_PATH_KEY = "delivery_eta.original_path"
"""Scope key holding the path the client sent, when it was rewritten."""
LOGGED_PATH_CHARS = 256
"""Longest original path :func:`original_path` returns (a log line is no place for 64 KB)."""


def known_paths(*groups: Iterable[str]) -> frozenset[str]:
    """The exact paths served as themselves (API routes, BentoML's own, static files...)."""
    return frozenset(path for group in groups for path in group)


class KnownPathsApp:
    """Serves ``app`` with every path outside ``known`` rewritten to :data:`UNMATCHED`."""

    def __init__(self, app: ASGIApp, known: frozenset[str]) -> None:
        if UNMATCHED in known:
            raise ValueError(f"{UNMATCHED} must not be a served path")
        self.app = app
        self.known = known

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and scope["path"] not in self.known:
            scope[ORIGINAL_PATH_KEY] = scope["path"]
            scope["path"] = UNMATCHED
            scope["raw_path"] = UNMATCHED.encode()
        await self.app(scope, receive, send)


def original_path(scope: Scope) -> str:
    """The path the client asked for (before any rewrite), cut to :data:`LOGGED_PATH_CHARS`."""
    path = str(scope.get(ORIGINAL_PATH_KEY, scope.get("path", "")))
    return path if len(path) <= LOGGED_PATH_CHARS else path[:LOGGED_PATH_CHARS] + "..."
