"""The Open Inference Protocol (v2) end to end, through NVIDIA's own client (``tritonclient``)
against the session's server: health, metadata, infer in JSON and in binary (answers equal to
``/v1/predict/batch``, prediction ids usable with ``/v1/feedback``), errors, limits, metrics."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from serving.settings import ServerSettings
from tests.harness.local_server import LocalServer
from tests.service.conftest import ORDER

ORDERS = [
    ORDER,
    {**ORDER, "driver_id": "new_driver", "distance_km": 7.9, "is_peak_hour": 0},
    {**ORDER, "restaurant_id": "r_0003", "distance_km": 0.5, "driver_avg_delivery_time": 31.0},
]
POINT, LOWER, UPPER, PID = (
    "predicted_delivery_time_min",
    "confidence_interval_lower",
    "confidence_interval_upper",
    "prediction_id",
)
INFER_ROUTE = "/v2/models/{model_name}/infer"


@pytest.fixture(scope="module")
def triton_client(server: LocalServer) -> Iterator[triton.InferenceServerClient]:
    client = triton.InferenceServerClient(server.url.removeprefix("http://"))
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="module")
def model(server: LocalServer, triton_client: triton.InferenceServerClient) -> dict[str, Any]:
    """The served model's metadata: its name and version are the model-store tag's."""
    tag = httpx.get(f"{server.url}/health", timeout=30).json()["model_version"]
    name, _, version = tag.partition(":")
    metadata: dict[str, Any] = triton_client.get_model_metadata(name)
    assert metadata == triton_client.get_model_metadata(name, model_version=version)
    assert (metadata["name"], metadata["versions"]) == (name, [version])
    return metadata


def _inputs(orders: list[dict[str, Any]], binary: bool, metadata: dict[str, Any]) -> list[Any]:
    """One tensor per input of the model's metadata that the orders carry (NaN: not given)."""
    tensors = []
    for spec in metadata["inputs"]:
        name, datatype = spec["name"], spec["datatype"]
        if not spec["parameters"]["required"] and not any(name in o for o in orders):
            continue
        if datatype == "BYTES":
            values = np.array([o[name] for o in orders], dtype=np.object_)
        elif datatype == "BOOL":
            values = np.array([bool(o[name]) for o in orders])
        else:
            values = np.array([o.get(name, np.nan) for o in orders], dtype=np.float64)
        tensor = triton.InferInput(name, [len(orders)], datatype)
        tensor.set_data_from_numpy(values, binary_data=binary)
        tensors.append(tensor)
    return tensors


def test_health_and_metadata_follow_the_served_model(
    triton_client: triton.InferenceServerClient, model: dict[str, Any]
) -> None:
    assert triton_client.is_server_live()
    assert triton_client.is_server_ready()
    assert triton_client.is_model_ready(model["name"])
    assert triton_client.is_model_ready(model["name"], model["versions"][0])
    assert triton_client.get_server_metadata()["extensions"] == ["binary_tensor_data"]
    names = [spec["name"] for spec in model["inputs"]]
    assert names[: len(ORDER)] == list(ORDER)  # one input per request field, in its order
    assert [o["name"] for o in model["outputs"]] == [POINT, LOWER, UPPER, PID]
    with pytest.raises(InferenceServerException, match="not served here") as wrong:
        triton_client.get_model_metadata(model["name"], model_version="no_such_version")
    assert wrong.value.status() == "404"
    with pytest.raises(InferenceServerException, match="not served here"):
        triton_client.infer("another_model", _inputs(ORDERS, False, model))
    assert not triton_client.is_model_ready("another_model")


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_infer_answers_as_v1_batch_and_its_ids_take_labels(
    server: LocalServer,
    triton_client: triton.InferenceServerClient,
    model: dict[str, Any],
    binary: bool,
) -> None:
    outputs = [
        triton.InferRequestedOutput(name, binary_data=binary) for name in (POINT, LOWER, UPPER, PID)
    ]
    result = triton_client.infer(
        model["name"], _inputs(ORDERS, binary, model), outputs=outputs, request_id="req-1"
    )
    v1 = httpx.post(f"{server.url}/v1/predict/batch", json={"orders": ORDERS}, timeout=30)
    expected = v1.json()["predictions"]
    for name in (POINT, LOWER, UPPER):
        np.testing.assert_allclose(
            result.as_numpy(name), [p[name] for p in expected], rtol=1e-9, err_msg=name
        )
    response = result.get_response()
    assert response["id"] == "req-1"
    assert response["model_version"] == model["versions"][0]
    ids = [v.decode() if isinstance(v, bytes) else v for v in result.as_numpy(PID).tolist()]
    assert len(set(ids)) == len(ORDERS)
    label = {"prediction_id": ids[0], "actual_delivery_time_min": 27.0}
    deadline = time.monotonic() + 10  # the log writes in the background: "not yet" (503) first
    while (
        joined := httpx.post(f"{server.url}/v1/feedback", json=label, timeout=30)
    ).status_code == 503:
        assert time.monotonic() < deadline, joined.text
        time.sleep(0.1)
    assert joined.status_code == 200, joined.text
    assert joined.json()["status"] == "joined"


def test_bad_requests_get_400_naming_the_input_and_are_counted_under_the_template(
    server: LocalServer, triton_client: triton.InferenceServerClient, model: dict[str, Any]
) -> None:
    bad = [{**o, "distance_km": 99.0} for o in ORDERS]
    for binary in (False, True):
        with pytest.raises(InferenceServerException, match="'distance_km'") as refused:
            triton_client.infer(model["name"], _inputs(bad, binary, model))
        assert refused.value.status() == "400"
    missing = [t for t in _inputs(ORDERS, True, model) if t.name() != "order_value"]
    with pytest.raises(InferenceServerException, match="'order_value' is required"):
        triton_client.infer(model["name"], missing)
    metrics = httpx.get(f"{server.url}/metrics", timeout=30).text
    errors = [
        line
        for line in metrics.splitlines()
        if line.startswith("delivery_eta_errors_total{") and f'route="{INFER_ROUTE}"' in line
    ]
    assert errors and any('category="validation"' in line for line in errors), errors
    assert "/v2/models/another_model" not in metrics


def test_the_body_limit_holds_for_v2(server: LocalServer, model: dict[str, Any]) -> None:
    limit = ServerSettings.model_fields["max_body_bytes"].default
    url = f"{server.url}/v2/models/{model['name']}/infer"
    too_big = httpx.post(url, content=b"x" * (limit + 1), timeout=30)
    assert too_big.status_code == 413, too_big.text
    gzip = httpx.post(url, content=b"{}", headers={"Content-Encoding": "gzip"}, timeout=30)
    assert gzip.status_code == 415 and "Content-Encoding" in gzip.json()["error"]
    assert (
        httpx.post(url, content=b"{", timeout=30)
        .json()["error"]
        .startswith("request is not valid JSON")
    )
