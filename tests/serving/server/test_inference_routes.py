"""The v2 routes over a stub pipeline, in-process: the infer routes are tried first, and every
route still answers its own path."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from starlette.applications import Starlette
from starlette.responses import JSONResponse, Response
from starlette.testclient import TestClient

from models.features import OrderColumns
from prediction_log import PredictionIds, new_block_key
from serving.inference_protocol.metadata import ServedModel
from serving.server.inference_routes import InferenceRoutes
from tests.serving.inference_protocol.protocol_bodies import (
    DEFAULT_SPECS,
    default_tensors,
    json_body,
)


class _Batch:
    def __init__(self, rows: int) -> None:
        self.outputs = np.array([[20.0, 15.0, 25.0]] * rows)
        self.prediction_ids = PredictionIds(new_block_key(rows), rows)


async def _predict(orders: OrderColumns) -> Any:
    return _Batch(orders.rows)


async def _ready() -> bool:
    return True


def _error(exc: Exception) -> Response:
    return JSONResponse({"error": str(exc)}, status_code=503)


V2 = InferenceRoutes(
    model=ServedModel.of_tag("eta:v7", "scikit-learn", DEFAULT_SPECS),
    server_name="eta-server",
    server_version="1",
    max_rows=1000,
    is_ready=_ready,
    predict_columns=_predict,
    answered_errors=(LookupError,),
    error_answer=_error,
)


def test_the_infer_routes_are_tried_first() -> None:
    routes = V2.routes()
    assert [r.path for r in routes[:2]] == [
        "/v2/models/eta/infer",
        "/v2/models/eta/versions/v7/infer",
    ]
    assert sorted(r.path for r in routes) == sorted(V2.paths())


def test_every_route_answers_its_path() -> None:
    client = TestClient(Starlette(routes=V2.routes()))
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/models/eta/versions/v7/ready").json() == {"name": "eta", "ready": True}
    assert client.get("/v2").json()["name"] == "eta-server"
    assert client.get("/v2/models/eta").json()["name"] == "eta"
    answer = client.post("/v2/models/eta/infer", content=json_body(default_tensors(rows=1)))
    assert answer.status_code == 200
    outputs = {o["name"]: o["data"] for o in answer.json()["outputs"]}
    assert outputs["predicted_delivery_time_min"] == [20.0]
    assert len(outputs["prediction_id"]) == 1
    tensors = default_tensors(rows=1)
    tensors[2]["data"] = [99.0]
    refused = client.post("/v2/models/eta/versions/v7/infer", content=json_body(tensors))
    assert refused.status_code == 400
    assert json.loads(refused.content)["error"].startswith(f"input {tensors[2]['name']!r}")
