"""Touch-points 6 and 12: BentoML's worker processes -- the environment they start with, and how to
find them among the processes of a ``bentoml serve``."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any


def pin_environment_for_workers(name: str, value: str) -> None:
    """Make every worker BentoML starts from now on (respawns too) see ``name=value``.

    Call it in the serving process before the workers spawn (an ``@bentoml.on_deployment`` hook).
    """
    os.environ[name] = value


# --------------------------------------------------------------------------- 12. worker processes

BENTOML_WORKER_MODULE = "_bentoml_impl.worker.service"
"""The module BentoML 1.4 starts each service worker with (``python -m <it> ...``)."""


def is_bentoml_worker(cmdline: Sequence[str]) -> bool:
    """Whether a process's command line (``psutil.Process.cmdline()``) is a BentoML service worker."""
    return BENTOML_WORKER_MODULE in cmdline


def bentoml_worker_processes(parent: Any) -> list[Any]:
    """The BentoML service workers among the descendants of ``parent`` (a ``psutil.Process``,
    the ``bentoml serve`` process), oldest first.

    BentoML has no public list of its workers, and circus's watcher and helpers run under the
    same parent. A process that exits (or turns zombie) while it is looked at is skipped: a
    worker being respawned is no worker yet.
    """
    import psutil

    found: list[tuple[float, Any]] = []
    for process in parent.children(recursive=True):
        try:
            if is_bentoml_worker(process.cmdline()):
                found.append((process.create_time(), process))
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
    return [process for _, process in sorted(found, key=lambda item: item[0])]
