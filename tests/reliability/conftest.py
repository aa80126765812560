"""Fixtures and figures of the reliability tests (fuzzing, shutdown, feature-store outage).

Every test here that needs a server starts its own ``bentoml serve`` on a free loopback port
(never the session ``server`` of tests/service: thousands of fuzzed requests would change its
metrics and drift state under the feet of the observability tests). Traffic goes to 127.0.0.1 only.

Each test may record figures with the ``record_figure`` fixture; they are printed in one block at the end
of the run ("reliability figures"), so a plain ``pytest tests/reliability`` shows them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.harness.local_server import LocalServer, local_server

_FIGURES: dict[str, Any] = {}

# An order whose entities the session model knows (r_0001/d_0002 exist in every generated world).
KNOWN_ORDER = {
    "restaurant_id": "r_0001",
    "driver_id": "d_0002",
    "distance_km": 3.2,
    "is_peak_hour": 1,
    "order_value": 25.0,
}


@pytest.fixture(scope="session")
def record_figure() -> Any:
    """``record_figure(name, value)``: keep a figure for the end-of-run summary.

    A fixture (not an importable function) so that the figures land in the instance of this
    module that pytest loaded as a plugin, whatever name a test module imports it under.
    """

    def record(name: str, value: Any) -> None:
        _FIGURES[name] = value

    return record


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _FIGURES:
        return
    terminalreporter.section("reliability figures")
    for name, value in _FIGURES.items():
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        terminalreporter.write_line(f"{name}: {text}")


def server_env(registered: Any, tmp_path: Path, **extra: str) -> dict[str, str]:
    """Settings for a test server: the session model, a private prediction log."""
    return {
        "DELIVERY_ETA_MODEL_TAG": registered.tag,
        "DELIVERY_ETA_PREDICTION_LOG_PATH": str(tmp_path / "predictions.sqlite3"),
        **extra,
    }


@pytest.fixture(scope="module")
def server(registered: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    """A private server for one test module (embedded feature store)."""
    workdir = tmp_path_factory.mktemp("reliability-server")
    with local_server(workdir / "server.log", env=server_env(registered, workdir)) as running:
        yield running


def metric_total(url: str, name: str) -> float:
    """Sum of every sample of the Prometheus metric ``name`` on ``url``/metrics."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and (line[len(name)] in " {"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def wait_until(predicate: Any, timeout_s: float, interval_s: float = 0.1) -> bool:
    """Poll ``predicate`` until it is true or ``timeout_s`` passes; returns its last value."""
    deadline = time.monotonic() + timeout_s
    while True:
        if predicate():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(interval_s)
