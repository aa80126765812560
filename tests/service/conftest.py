"""Service tests share the session server (``tests/conftest.py``) through an HTTP client."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.harness.local_server import LocalServer


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
