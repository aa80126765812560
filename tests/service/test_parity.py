"""Parity: the API predicts exactly what the offline pipeline predicts for holdout rows.

The requests carry only ids and order fields, so this also checks that the service assembles
the same entity features from its store as training did.
"""

import httpx
import numpy as np

from models.contract import default_contract

ROWS = 300


def test_api_matches_offline_pipeline_on_holdout_rows(client: httpx.Client, registered) -> None:  # type: ignore[no-untyped-def]
    holdout = registered.result.holdout.head(ROWS)
    orders = [
        {
            "restaurant_id": row.restaurant_id,
            "driver_id": row.driver_id,
            "distance_km": float(row.distance_km),
            "is_peak_hour": int(row.is_peak_hour),
            "order_value": float(row.order_value),
        }
        for row in holdout.itertuples()
    ]
    response = client.post("/v1/predict/batch", json={"orders": orders})
    assert response.status_code == 200, response.text
    served = np.array(
        [
            [
                p["predicted_delivery_time_min"],
                p["confidence_interval_lower"],
                p["confidence_interval_upper"],
            ]
            for p in response.json()["predictions"]
        ]
    )

    names = default_contract().feature_names  # the session's model's contract
    features = holdout[[f"feature_{name}" for name in names]].to_numpy()
    offline = registered.result.model.predict_rows(features)
    np.testing.assert_allclose(served, offline, rtol=0, atol=1e-6)
    np.testing.assert_allclose(served[:, 0], holdout["predicted"].to_numpy(), rtol=0, atol=1e-6)

    # Single-order calls take the same path through the batcher.
    for order, expected in zip(orders[:20], offline[:20], strict=True):
        single = client.post("/v1/predict", json=order).json()
        assert abs(single["predicted_delivery_time_min"] - expected[0]) <= 1e-6
