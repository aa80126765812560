"""What an invalid request costs in the answer, the log and the metric labels: bounded however
many fields are bad; every log line at most MAX_LINE_BYTES."""

import json
import logging
import sys

import httpx
import pytest
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from framework_internals import bentoml_request_error_logger
from models.contract import default_contract
from serving.schema import feedback_model, order_model
from serving.server.middleware.request_context import RequestContextMiddleware
from serving.telemetry.labels import FieldLabels
from serving.telemetry.logs import (
    MAX_LINE_BYTES,
    MAX_LISTED_ERRORS,
    BoundedJsonFormatter,
    configure_logging,
    log_request_line,
    use_field_labels,
    validation_error_answer,
)
from serving.telemetry.request_notes import request_scope

Order = order_model(default_contract())
LABELS = FieldLabels.of(Order, feedback_model(default_contract()))

ORDER = {
    "restaurant_id": "r_1",
    "driver_id": "d_1",
    "distance_km": 3.0,
    "is_peak_hour": 1,
    "order_value": 20.0,
}


def _errors(unknown_keys: int, key_chars: int = 8) -> ValidationError:
    body = {**ORDER, "distance_km": 99, **{f"{i:0{key_chars}d}": 1 for i in range(unknown_keys)}}
    with pytest.raises(ValidationError) as raised:
        Order.model_validate(body)
    return raised.value


def test_the_answer_lists_the_first_errors_and_counts_them_all() -> None:
    body, summary, fields = validation_error_answer(_errors(5000), LABELS)
    answer = json.loads(body)
    assert answer["error_count"] == 5001
    assert answer["error"] == "5001 validation errors in the request body"
    assert len(answer["detail"]) == MAX_LISTED_ERRORS
    assert answer["detail"][0]["loc"] == ["distance_km"]
    assert set(answer["detail"][0]) == {"type", "loc", "msg", "url"}
    assert len(body) < 3000
    assert summary.endswith("; and 4991 more") and summary.startswith("distance_km: Input")
    assert fields == {"distance_km", "other"}


def test_a_huge_key_is_shortened_in_the_answer() -> None:
    body, summary, fields = validation_error_answer(_errors(1, key_chars=900_000), LABELS)
    assert len(body) < 1000 and len(summary) < 500
    assert fields == {"distance_km", "other"}


async def _bentoml_like_400(request: Request) -> JSONResponse:
    """What BentoML's api_endpoint_wrapper does: log the error, then echo every error."""
    try:
        Order.model_validate(await request.json())
    except ValidationError as exc:
        bentoml_request_error_logger().error("failed", exc_info=exc)
        return JSONResponse({"detail": exc.errors(include_context=False)}, status_code=400)
    return JSONResponse({"ok": True})


async def test_the_request_context_sends_the_bounded_answer_instead(capsys) -> None:  # type: ignore[no-untyped-def]
    configure_logging("INFO")
    use_field_labels(LABELS)
    finished = []
    app = RequestContextMiddleware(
        Starlette(routes=[Route("/v1/predict", _bentoml_like_400, methods=["POST"])]),
        on_complete=lambda info, *_: finished.append(dict(info.fields)),
    )
    body = {**ORDER, **{f"unknown_{i}": "v" * 100 for i in range(3000)}}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as client:
        response = await client.post("/v1/predict", json=body)
        fine = await client.post("/v1/predict", json=ORDER)
    assert response.status_code == 400
    assert int(response.headers["content-length"]) == len(response.content) < 3000
    assert response.json()["error_count"] == 3000
    assert fine.json() == {"ok": True}
    assert finished[0]["invalid_fields"] == {"other"}
    lines = capsys.readouterr().out.splitlines()
    assert max(len(line) for line in lines) < 3000
    assert "and 2990 more" in json.loads(lines[0])["error"]


def _format(**extra: object) -> str:
    record = logging.LogRecord("delivery_eta.x", logging.WARNING, __file__, 1, "request", (), None)
    record.__dict__.update(extra)
    return BoundedJsonFormatter("{levelname}{name}{message}", style="{").format(record)


@pytest.mark.parametrize(
    "extra",
    [
        {"route": "/v1/" + "x" * 100_000},
        {"route": "/v1/" + "\u00e9" * 100_000, "error": "\u00e9" * 100_000},
        {f"field_{i}": "y" * 2000 for i in range(20)},
        {"features_source": {str(i): "online" for i in range(10_000)}},
    ],
)
def test_every_line_is_bounded_and_still_json(extra: dict[str, object]) -> None:
    line = _format(**extra)
    assert len(line.encode()) <= MAX_LINE_BYTES
    parsed = json.loads(line)
    assert parsed["message"] == "request" and parsed["levelname"] == "WARNING"


def test_a_short_line_is_unchanged() -> None:
    parsed = json.loads(_format(route="/v1/predict", status=200))
    assert parsed["route"] == "/v1/predict" and parsed["status"] == 200
    assert "truncated" not in parsed


def test_a_traceback_keeps_its_end() -> None:
    try:
        raise RuntimeError("the cause " + "z" * 50_000 + " END")
    except RuntimeError:
        record = logging.LogRecord(
            "delivery_eta.x", logging.ERROR, __file__, 1, "boom", (), sys.exc_info()
        )
    line = BoundedJsonFormatter("{message}", style="{").format(record)
    assert len(line) <= MAX_LINE_BYTES and json.loads(line)["exc_info"].endswith(" END")


@pytest.mark.parametrize(
    ("level", "fields"),
    [
        (
            logging.INFO,
            {
                "route": "/v1/predict",
                "method": "POST",
                "status": 200,
                "latency_ms": 1.234,
                "model_version": "delivery_eta:abc",
                "rows": 1,
                "features_source": {"online": 1, "default": 1},
            },
        ),
        (logging.WARNING, {"route": "/v1/feedback", "status": 404, "error": "\u00e9" * 5000}),
        (logging.WARNING, {"route": "/v1/" + "x" * 100_000, "status": 404}),
        (logging.INFO, {"route": "/v1/predict", "_private": 1}),  # the ordinary path's rules
    ],
)
def test_the_request_line_is_the_ordinary_line_byte_for_byte(
    level: int, fields: dict[str, object], capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    configure_logging("INFO")
    logger = logging.getLogger("delivery_eta.request")
    monkeypatch.setattr("time.time", lambda: 1_700_000_000.123456)
    with request_scope("a" * 32, "/v1/predict"):
        log_request_line(logger, level, "a" * 32, fields)
        logger.log(level, "request", extra=fields)
    fast, ordinary = capsys.readouterr().out.splitlines()
    assert fast == ordinary
    assert json.loads(fast)["timestamp"] == "2023-11-14T22:13:20.123456+00:00"


def test_the_request_line_builds_no_log_record(monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    configure_logging("INFO")
    logger = logging.getLogger("delivery_eta.request")
    made: list[str] = []
    original = logging.Logger.makeRecord
    monkeypatch.setattr(
        logging.Logger,
        "makeRecord",
        lambda self, *args, **kwargs: made.append(self.name) or original(self, *args, **kwargs),
    )
    log_request_line(logger, logging.INFO, "b" * 32, {"route": "/v1/predict", "status": 200})
    assert made == [] and json.loads(capsys.readouterr().out)["request_id"] == "b" * 32
