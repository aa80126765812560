"""Real servers for the service tests: `bentoml serve` on a free loopback port."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from loadtest.local_server import LocalServer, local_server


@pytest.fixture(scope="session")
def server(registered, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:  # type: ignore[no-untyped-def]
    """The service with the session's model and the embedded feature store."""
    workdir = tmp_path_factory.mktemp("server")
    env = {
        "DELIVERY_ETA_MODEL_TAG": registered.tag,
        "DELIVERY_ETA_PREDICTION_LOG_PATH": str(workdir / "predictions.sqlite3"),
    }
    with local_server(workdir / "server.log", env=env) as running:
        yield running


@pytest.fixture
def client(server: LocalServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as http:
        yield http


ORDER = {
    "restaurant_id": "r_0001",
    "driver_id": "d_0002",
    "distance_km": 3.2,
    "is_peak_hour": 1,
    "order_value": 25.0,
}
