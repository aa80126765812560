"""A model trained on a user's order file, served for real: the file's entities come from the
online store and the API predicts what the offline pipeline predicted for the file's holdout."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from examples.warehouse_export import order_export
from models.contract import default_contract
from models.training.config import TrainingConfig
from models.training.from_files import load_file_training_data
from models.training.release import RegisteredModel, train_and_register
from tests.harness.local_server import local_server

ROWS = 120


def _write(fmt: str, root: Path) -> Path:
    export = order_export(20_000, days=40, seed=23)
    if fmt == "csv":
        path = root / "orders.csv"
        export.to_csv(path, index=False)
        return path
    path = root / "orders_parquet"
    path.mkdir()
    half = len(export) // 2
    export.iloc[:half].to_parquet(path / "part-0.parquet", index=False)
    export.iloc[half:].to_parquet(path / "part-1.parquet", index=False)
    return path


@pytest.fixture(scope="module", params=["csv", "parquet"])
def trained_on_file(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RegisteredModel, httpx.Client]]:
    root = tmp_path_factory.mktemp(f"file-{request.param}")
    data = load_file_training_data(_write(request.param, root))
    registered = train_and_register(TrainingConfig.small(), stage="candidate", data=data)
    env = {"DELIVERY_ETA_MODEL_TAG": registered.tag}
    with (
        local_server(root / "server.log", env=env) as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        yield registered, client


def test_served_predictions_match_the_offline_holdout(
    trained_on_file: tuple[RegisteredModel, httpx.Client],
) -> None:
    registered, client = trained_on_file
    holdout = registered.result.holdout.head(ROWS)
    orders = [
        {
            "restaurant_id": str(row.restaurant_id),
            "driver_id": str(row.driver_id),
            "distance_km": float(row.distance_km),
            "is_peak_hour": int(row.is_peak_hour),
            "order_value": float(row.order_value),
        }
        for row in holdout.itertuples()
    ]
    response = client.post("/v1/predict/batch", json={"orders": orders})
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    served = np.array([p["predicted_delivery_time_min"] for p in predictions])
    np.testing.assert_allclose(served, holdout["predicted"].to_numpy(), rtol=0, atol=1e-6)
    assert {p["model_version"] for p in predictions} == {registered.tag}
    names = default_contract().feature_names  # a file without CONTRACT: the default's
    features = holdout[[f"feature_{name}" for name in names]].to_numpy()
    np.testing.assert_allclose(
        served, registered.result.model.predict_rows(features)[:, 0], rtol=0, atol=1e-6
    )


def test_the_files_entities_are_served_from_the_online_store(
    trained_on_file: tuple[RegisteredModel, httpx.Client],
) -> None:
    registered, client = trained_on_file
    entities = registered.result.entities
    restaurant = next(iter(entities.tables["restaurant_avg_delivery_time"]))
    driver = next(iter(entities.tables["driver_avg_delivery_time"]))
    assert restaurant.startswith("rest-") and driver.startswith("drv-")  # the file's ids
    order = {"distance_km": 3.0, "is_peak_hour": 0, "order_value": 30.0}
    known = client.post(
        "/v1/predict", json={**order, "restaurant_id": restaurant, "driver_id": driver}
    )
    assert known.status_code == 200, known.text
    assert known.json()["features_source"] == {
        "restaurant_avg_delivery_time": "online",
        "driver_avg_delivery_time": "online",
    }
    unknown = client.post(
        "/v1/predict", json={**order, "restaurant_id": "r_0001", "driver_id": driver}
    )
    assert unknown.json()["features_source"]["restaurant_avg_delivery_time"] == "default"
