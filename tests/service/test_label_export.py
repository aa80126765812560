"""From production feedback to training data: predictions and labels sent to the real server,
then ``python -m serving.pipeline.prediction_log.export`` run against its prediction log (while
it serves) gives back exactly the labelled orders, as they were requested, with their actuals."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from models.store.artifact import load_artifact
from tests.harness.local_server import ROOT, LocalServer
from tests.service.conftest import ORDER

pytestmark = pytest.mark.server


def _feedback(client: httpx.Client, prediction_id: str, actual: float) -> None:
    body = {"prediction_id": prediction_id, "actual_delivery_time_min": actual}
    response = client.post("/v1/feedback", json=body)
    deadline = time.monotonic() + 5
    # Another worker may still hold the prediction in its queue (written every 100 ms).
    while response.status_code == 404 and time.monotonic() < deadline:
        time.sleep(0.2)
        response = client.post("/v1/feedback", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "joined"


def test_the_export_gives_back_the_labelled_requests_in_the_training_schema(
    server: LocalServer,
    client: httpx.Client,
    registered: Any,
    tmp_path: Path,
) -> None:
    entities = load_artifact(registered.tag).entities
    singles = [
        ORDER,  # known entities: their online averages
        {**ORDER, "restaurant_id": "export.r-1", "driver_id": "export:d_1", "is_peak_hour": 0},
        {**ORDER, "distance_km": 7.5, "order_value": 61.25, "restaurant_avg_delivery_time": 55.0},
    ]
    batch = [
        {
            "restaurant_id": f"r_{i:04d}",
            "driver_id": f"d_{i + 10:04d}" if i != 3 else "export-unknown-driver",
            "distance_km": 1.5 + i,
            "is_peak_hour": i % 2,
            "order_value": 10.0 + 7 * i,
        }
        for i in range(5)
    ]
    predicted_from = time.time()
    answers = []
    for order in singles:
        response = client.post("/v1/predict", json=order)
        assert response.status_code == 200, response.text
        answers.append(response.json())
    response = client.post("/v1/predict/batch", json={"orders": batch})
    assert response.status_code == 200, response.text
    answers += response.json()["predictions"]
    predicted_until = time.time()
    orders = singles + batch

    labelled = {0: 31.0, 2: 47.5, 3: 18.25, 5: 22.0, 6: 64.0}  # by position in `orders`
    labelled_from = time.time()
    for position, actual in labelled.items():
        _feedback(client, answers[position]["prediction_id"], actual)
    labelled_until = time.time()

    out = tmp_path / "labels.parquet"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "serving.pipeline.prediction_log.export",
            "--out",
            str(out),
            "--path",
            str(server.prediction_log_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ),
    )

    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["rows_written"] >= len(labelled)  # other tests label predictions too
    frame = pd.read_parquet(out)
    assert list(frame.columns)[:7] == [
        "created_at",
        "restaurant_id",
        "driver_id",
        "distance_km",
        "is_peak_hour",
        "order_value",
        "delivery_time_min",
    ]
    ours = {answer["prediction_id"]: position for position, answer in enumerate(answers)}
    exported = frame[frame["prediction_id"].isin(ours)].set_index("prediction_id")
    assert sorted(ours[pid] for pid in exported.index) == sorted(labelled)  # no unlabelled row
    for prediction_id, row in exported.iterrows():
        position = ours[str(prediction_id)]
        order, answer = orders[position], answers[position]
        assert row["restaurant_id"] == order["restaurant_id"]
        assert row["driver_id"] == order["driver_id"]
        assert row["distance_km"] == order["distance_km"]
        assert row["is_peak_hour"] == order["is_peak_hour"]
        assert row["order_value"] == order["order_value"]
        assert row["delivery_time_min"] == labelled[position]
        assert row["model_version"] == answer["model_version"] == registered.tag
        for name in (
            "predicted_delivery_time_min",
            "confidence_interval_lower",
            "confidence_interval_upper",
        ):
            assert row[name] == pytest.approx(answer[name], abs=1e-9), name
        # The entity averages the model was served: the request's, the online store's, or
        # the defaults, as the response said.
        for name, table in (
            ("restaurant_avg_delivery_time", entities.restaurant_avg_delivery_time),
            ("driver_avg_delivery_time", entities.driver_avg_delivery_time),
        ):
            source = answer["features_source"][name]
            entity = order[name.split("_avg")[0] + "_id"]
            served = {
                "request": order.get(name),
                "online": table.get(entity),
                "default": entities.defaults[name],
            }[source]
            assert row[name] == pytest.approx(served, abs=1e-9), (name, source)
        assert predicted_from - 1e-3 <= row["created_at"].timestamp() <= predicted_until + 1e-3
        assert labelled_from - 1e-3 <= row["labelled_at"].timestamp() <= labelled_until + 1e-3
    sources = {answers[p]["features_source"]["restaurant_avg_delivery_time"] for p in labelled}
    assert {"online", "request"} <= sources  # the override and the store both checked
    assert "default" in {
        answers[p]["features_source"]["driver_avg_delivery_time"] for p in labelled
    }
