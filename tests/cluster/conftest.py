"""The multi-replica stack for the cluster tests (``make cluster-test``; marker ``cluster``,
outside ``make test``): three replicas of the session's model with a challenger in shadow, one
Redis, HAProxy and Prometheus (loadtest/cluster/stack.py), once per runtime of
``$CLUSTER_RUNTIMES``: ``process`` (``bentoml serve``, as ``make serve`` runs it) and ``image``
(the container image; ``make cluster-test`` asks for it when a Docker engine is running). Every
test runs on each; pytest brings up one stack, runs them all, and tears it down before the next.

Each fault test appends its figures to ``$CLUSTER_RESULTS`` (default
loadtest/results/cluster.md) and they are printed together at the end of the run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from loadtest.cluster import container
from loadtest.cluster.stack import Stack, cluster_stack
from loadtest.cluster.traffic import FaultFigures
from loadtest.servers import ROOT

RESULTS = Path(os.environ.get("CLUSTER_RESULTS", ROOT / "loadtest" / "results" / "cluster.md"))
REPLICAS = int(os.environ.get("CLUSTER_REPLICAS", "3"))
RUNTIMES = os.environ.get("CLUSTER_RUNTIMES", "process").split()
_TABLES: list[str] = []


def order_for(index: int) -> dict[str, Any]:
    """A valid order for entities every generated world has (features online from Redis)."""
    return {
        "restaurant_id": f"r_{index % 50:04d}",
        "driver_id": f"d_{index % 120:04d}",
        "distance_km": 1 + index % 30,
        "is_peak_hour": index % 2,
        "order_value": 10.0 + index % 40,
    }


@pytest.fixture(scope="session")
def challenger(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A second small model (another seed) for the replicas' shadow."""
    from models.training.config import TrainingConfig
    from models.training.release import train_and_register

    return train_and_register(
        TrainingConfig.small(seed=11),
        stage="candidate",
        card_dir=tmp_path_factory.mktemp("challenger-card"),
    )


@pytest.fixture(scope="session", params=RUNTIMES)
def stack(  # type: ignore[no-untyped-def]
    request: pytest.FixtureRequest,
    registered,
    challenger,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp(f"cluster-{request.param}")
    image = None
    if request.param == "image":
        # Asked for, so not skipped: a run that meant to test the image must not pass without it.
        reason = container.docker_unavailable()
        if reason is not None:
            pytest.fail(f"CLUSTER_RUNTIMES has 'image' but no Docker engine answers: {reason}")
        image = container.build_image(registered.tag, challenger.tag, workdir / "image-build.log")
    with cluster_stack(
        workdir,
        registered.tag,
        replicas=REPLICAS,
        shadow_model_tag=challenger.tag,
        image=image,
    ) as running:
        yield running


@pytest.fixture
def report(stack: Stack) -> Any:
    """``report(figures)``: print a fault's table at the end of the run and append it to RESULTS,
    titled with the runtime of the replicas."""

    def record(figures: FaultFigures) -> None:
        figures.fault = f"[{stack.runtime}] {figures.fault}"
        _TABLES.append(figures.table())
        figures.append_to(RESULTS)

    return record


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _TABLES:
        return
    terminalreporter.section(f"cluster figures (also appended to {RESULTS})")
    for table in _TABLES:
        terminalreporter.write_line(table)
