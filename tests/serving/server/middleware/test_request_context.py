"""The request-context middleware: ids honoured or generated, echoed, and in the log line."""

import json
import logging

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from serving.server.middleware.request_context import RequestContextMiddleware
from serving.telemetry.logs import configure_logging
from serving.telemetry.request_notes import annotate, current_request


async def _endpoint(request: Request) -> JSONResponse:
    info = current_request()
    annotate(model_version="m:1", rows=3)
    logging.getLogger("delivery_eta.test").info("inside the handler")
    status = int(request.query_params.get("status", 200))
    return JSONResponse({"seen_id": info.request_id if info else None}, status_code=status)


@pytest.fixture
def client() -> httpx.AsyncClient:
    finished: list[tuple[str, int, str | None]] = []
    app = RequestContextMiddleware(
        Starlette(routes=[Route("/v1/x", _endpoint)]),
        on_complete=lambda info, status, _ms, category: finished.append(
            (info.route, status, category)
        ),
    )
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")
    http.finished = finished  # type: ignore[attr-defined]
    return http


async def test_client_request_id_is_honoured_echoed_and_logged(client, capsys) -> None:  # type: ignore[no-untyped-def]
    configure_logging("INFO")
    response = await client.get("/v1/x", headers={"X-Request-ID": "order-42.retry:1"})
    assert response.headers["x-request-id"] == "order-42.retry:1"
    assert response.json() == {"seen_id": "order-42.retry:1"}
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {line["request_id"] for line in lines} == {"order-42.retry:1"}
    request_line = next(line for line in lines if line["message"] == "request")
    assert request_line["route"] == "/v1/x" and request_line["status"] == 200
    assert request_line["model_version"] == "m:1" and request_line["rows"] == 3
    assert request_line["latency_ms"] >= 0 and "timestamp" in request_line
    assert any(line["message"] == "inside the handler" for line in lines)


@pytest.mark.parametrize("sent", [None, "", "x" * 129, "bad id with spaces", "new\nline"])
async def test_missing_or_unsafe_request_ids_are_replaced(client, sent: str | None) -> None:  # type: ignore[no-untyped-def]
    headers = {} if sent is None else {"X-Request-ID": sent}
    try:
        response = await client.get("/v1/x", headers=headers)
    except (httpx.LocalProtocolError, ValueError):
        pytest.skip("the HTTP client itself refuses this header")
    generated = response.headers["x-request-id"]
    assert generated != sent and len(generated) == 32
    assert response.json()["seen_id"] == generated


async def test_errors_are_classified_for_metrics(client) -> None:  # type: ignore[no-untyped-def]
    await client.get("/v1/x?status=400")
    await client.get("/v1/x?status=503")
    await client.get("/v1/x")
    assert client.finished == [
        ("/v1/x", 400, "validation"),
        ("/v1/x", 503, "internal"),
        ("/v1/x", 200, None),
    ]
