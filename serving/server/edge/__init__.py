"""The HTTP edge: what every connection and request meets before BentoML's app.

``install`` (called when a worker imports the service) raises the open-files limit and, as
each uvicorn server starts, wraps the app it serves (:mod:`serving.server.edge.paths`) and its
connection protocol (:mod:`serving.server.edge.connection`), through ``framework_internals``.
"""

from __future__ import annotations

import logging
import resource
from collections.abc import Callable
from typing import Any

from framework_internals import guard_connections, install_listener_hooks, wrap_served_app
from serving.server.edge.connection import EdgeLimits, guard_factory
from serving.server.edge.paths import KnownPathsApp

logger = logging.getLogger("delivery_eta.edge")


def raise_open_files_limit() -> tuple[int, int]:
    """Raise this process's soft RLIMIT_NOFILE to its hard limit (nginx's
    ``worker_rlimit_nofile``): each connection costs a descriptor, and 1,024 -- a common soft
    default -- is a few seconds of a connection flood. Returns (before, after)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft >= hard:
        return soft, soft
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1_048_576)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError) as exc:
        logger.warning("open-files limit stays %d: %s", soft, exc)
        return soft, soft
    return soft, target


def install(
    limits: EdgeLimits,
    known: frozenset[str],
    refused: Callable[[str], None],
) -> Callable[[Any], None]:
    """Guard every uvicorn server this process starts from now on (call at service import)."""

    def starting(server: Any) -> None:
        wrap_served_app(server, lambda app: KnownPathsApp(app, known))
        guard_connections(server, guard_factory(limits, refused))

    install_listener_hooks(starting=starting)
    return starting
