"""The service on a free loopback port for a test: ``loadtest.servers`` (one copy, shared with the
measurement scripts), under the name the tests have always imported."""

from loadtest.servers import (
    ROOT,
    LocalServer,
    free_port,
    local_server,
    private_bentoml_home,
    serve_command,
    stop_process_group,
    wait_ready,
)

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
