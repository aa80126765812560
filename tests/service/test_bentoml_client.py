"""BentoML's own Python client (``bentoml.SyncHTTPClient``, as the README shows it) against the
real server: the routes are its methods, a 400 is its ``InvalidArgument`` carrying our body."""

from __future__ import annotations

import json

import bentoml
import pytest
from bentoml.exceptions import InvalidArgument

from tests.harness.local_server import LocalServer
from tests.service.conftest import ORDER


def test_sync_http_client_predicts_batches_and_reports_a_400(server: LocalServer) -> None:
    with bentoml.SyncHTTPClient(server.url) as client:
        prediction = client.predict(**ORDER)
        batch = client.predict_batch(orders=[ORDER, {**ORDER, "driver_id": "new_driver"}])
        with pytest.raises(InvalidArgument) as refused:
            client.predict(**{**ORDER, "distance_km": 99})

    low, high = prediction["confidence_interval_lower"], prediction["confidence_interval_upper"]
    assert low <= prediction["predicted_delivery_time_min"] <= high
    assert prediction["model_version"].startswith("delivery_eta:")
    assert len(batch["predictions"]) == 2
    assert batch["predictions"][1]["features_source"]["driver_avg_delivery_time"] == "default"
    assert refused.value.error_code == 400
    answer = json.loads(str(refused.value))
    assert answer["error"] == "1 validation error in the request body"
    assert [error["loc"] for error in answer["detail"]] == [["distance_km"]]
