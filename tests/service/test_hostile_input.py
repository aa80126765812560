"""Hostile input: non-JSON and oversized bodies are refused before anything parses them."""

import json
import os
import pickle
from pathlib import Path

import httpx
import pytest

from tests.service.conftest import ORDER


class _CreatesFile:
    """Unpickling this runs os.system(...) -- it must never happen on the server."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, (f"touch {self.path}",))


@pytest.mark.parametrize("route", ["/v1/predict", "/v1/predict/batch", "/v1/feedback"])
@pytest.mark.parametrize(
    "content_type",
    [
        "application/vnd.bentoml+pickle",
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/octet-stream",
        None,
    ],
)
def test_only_json_bodies_are_accepted(
    client: httpx.Client, tmp_path: Path, route: str, content_type: str | None
) -> None:
    marker = tmp_path / "pwned"
    payload = pickle.dumps(_CreatesFile(marker))
    headers = {} if content_type is None else {"content-type": content_type}
    response = client.post(route, content=payload, headers=headers)
    assert response.status_code == 415, response.text
    assert "application/json" in response.json()["error"]
    assert response.headers["x-request-id"]
    assert not marker.exists()


def test_json_with_charset_is_fine(client: httpx.Client) -> None:
    response = client.post(
        "/v1/predict",
        content=json.dumps(ORDER),
        headers={"content-type": "application/json; charset=utf-8"},
    )
    assert response.status_code == 200


def _big_batch() -> bytes:
    body = json.dumps({"orders": [ORDER] * 20_000}).encode()
    assert len(body) > 1_048_576
    return body


def test_oversized_body_is_413_before_parsing(client: httpx.Client) -> None:
    response = client.post(
        "/v1/predict/batch", content=_big_batch(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert "1048576 bytes" in response.json()["error"]


def test_oversized_chunked_body_without_length_is_413(client: httpx.Client) -> None:
    body = _big_batch()
    chunks = (body[i : i + 65536] for i in range(0, len(body), 65536))
    response = client.post(
        "/v1/predict/batch", content=chunks, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413


def test_small_chunked_body_is_served(client: httpx.Client) -> None:
    body = json.dumps(ORDER).encode()
    response = client.post(
        "/v1/predict",
        content=iter([body[:10], body[10:]]),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 200, response.text


def test_cors_is_off(client: httpx.Client) -> None:
    preflight = client.options(
        "/v1/predict",
        headers={"Origin": "https://elsewhere.example", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in preflight.headers
    actual = client.post("/v1/predict", json=ORDER, headers={"Origin": "https://elsewhere.example"})
    assert actual.status_code == 200
    assert "access-control-allow-origin" not in actual.headers


def test_errors_never_leak_internals(client: httpx.Client) -> None:
    responses = [
        client.post(
            "/v1/predict",
            content=b'{"restaurant_id": ',
            headers={"content-type": "application/json"},
        ),
        client.post(
            "/v1/predict", content=b"\xff\xfe", headers={"content-type": "application/json"}
        ),
        client.post("/v1/predict/batch", json={"orders": "x"}),
    ]
    for response in responses:
        assert 400 <= response.status_code < 500
        text = response.text
        assert "Traceback" not in text and "/site-packages/" not in text and "/work/" not in text
