"""The service on a free loopback port for a test: ``loadtest.servers`` (one copy, shared with the
measurement scripts), under the name the tests have always imported.

One difference: a test's server has **one worker** unless its ``env`` sets
``DELIVERY_ETA_WORKERS``. A start costs ~8.5 CPU-s with one worker and ~12 with two (each worker
imports the service and loads the model), and the suite starts dozens; the tests about more than
one worker (metrics summed across processes, respawn, draining, the tokens' two workers) ask for
2, as production's pods run them.
"""

import contextlib
from collections.abc import Iterator, Mapping
from pathlib import Path

from loadtest import servers
from loadtest.servers import (
    ROOT,
    LocalServer,
    free_port,
    private_bentoml_home,
    serve_command,
    stop_process_group,
    wait_ready,
)

TEST_WORKERS = "1"


@contextlib.contextmanager
def local_server(
    log_path: Path, env: Mapping[str, str] | None = None, ready_timeout_s: float = 90
) -> Iterator[LocalServer]:
    """:func:`loadtest.servers.local_server` with one worker unless ``env`` says otherwise."""
    with servers.local_server(
        log_path, {"DELIVERY_ETA_WORKERS": TEST_WORKERS, **(env or {})}, ready_timeout_s
    ) as running:
        yield running


__all__ = [
    "ROOT",
    "LocalServer",
    "free_port",
    "local_server",
    "private_bentoml_home",
    "serve_command",
    "stop_process_group",
    "wait_ready",
]
