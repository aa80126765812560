"""The body guard on plain ASGI messages: every framing is held to the limit by the bytes that
arrive, and an over-sized JSON shape is refused before the app parses it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from serving.server.middleware.body_guard import HttpGuardMiddleware, json_shape_problem

LIMIT = 1024
ORDER = {
    "restaurant_id": "r_0001",
    "driver_id": "d_0002",
    "distance_km": 3.2,
    "is_peak_hour": 1,
    "order_value": 25.0,
}


class App:
    """Records the body it was handed and answers 200."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.bodies.append(body)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


async def call(
    chunks: list[bytes],
    headers: dict[str, str] | None = None,
    path: str = "/v1/predict",
    **guard: Any,
) -> tuple[int, dict[bytes, bytes], bytes, App, int]:
    """Run the guard over a body arriving as ``chunks`` to ``path``: status, headers, body, app,
    and how many chunks the guard read."""
    app = App()
    middleware = HttpGuardMiddleware(app, max_body_bytes=LIMIT, **guard)
    headers = {"content-type": "application/json", **(headers or {})}
    scope = {
        "type": "http",
        "method": "POST",
        "path": path,
        # Latin-1, as the server hands header bytes over (ASCII values are unchanged).
        "headers": [(k.encode(), v.encode("latin-1")) for k, v in headers.items()],
    }
    pending = list(chunks)
    read = 0

    async def receive() -> dict[str, Any]:
        nonlocal read
        if not pending:
            return {"type": "http.disconnect"}
        read += 1
        chunk = pending.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(pending)}

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await middleware(scope, receive, send)
    start, body = sent[0], sent[1]
    return start["status"], dict(start["headers"]), body.get("body", b""), app, read


@pytest.mark.parametrize(
    "declared",
    [None, "10", str(LIMIT)],
    ids=["chunked", "chunked-with-a-small-length", "chunked-with-the-limit-as-length"],
)
async def test_a_body_over_the_limit_is_413_whatever_length_it_declares(
    declared: str | None,
) -> None:
    # 64 chunks of 100 bytes: the guard stops reading after the 11th.
    headers = {} if declared is None else {"content-length": declared}
    status, headers_sent, body, app, read = await call([b" " * 100] * 64, headers)
    assert status == 413
    assert headers_sent[b"connection"] == b"close"
    assert json.loads(body)["error"] == f"request body over {LIMIT} bytes"
    assert read == 11 and app.bodies == []


@pytest.mark.parametrize("declared", ["²", "1²", "-1", "1e3"])
async def test_a_declared_length_that_is_no_number_is_refused_not_a_crash(declared: str) -> None:
    # "²" (one Latin-1 byte) passes str.isdigit, and int() refuses it: it was a ValueError.
    status, _, _, app, read = await call([b"{}"], {"content-length": declared})
    assert (status, read, app.bodies) == (413, 0, [])


async def test_a_declared_length_over_the_limit_is_413_before_reading() -> None:
    status, headers_sent, _, _, read = await call([b"x"], {"content-length": str(LIMIT + 1)})
    assert (status, read) == (413, 0)
    assert headers_sent[b"connection"] == b"close"


async def test_a_body_within_the_limit_reaches_the_app_whole() -> None:
    body = json.dumps(ORDER).encode()
    status, _, _, app, _ = await call([body[:10], body[10:]], {"content-length": str(len(body))})
    assert status == 200 and app.bodies == [body]


async def test_refusals_are_counted() -> None:
    counted: list[str] = []
    await call([b" " * 2000], refused=counted.append)
    await call([b"{}"], {"content-type": "text/plain"}, refused=counted.append)
    assert counted == ["body_too_large", "unsupported_media_type"]


async def test_a_json_object_with_too_many_keys_is_400_before_the_app_sees_it() -> None:
    counted: list[str] = []
    body = json.dumps({**ORDER, **{f"k{i}": 1 for i in range(50)}}).encode()
    status, headers_sent, answer, app, _ = await call(
        [body], max_object_keys=7, refused=counted.append
    )
    assert status == 400 and app.bodies == []
    assert json.loads(answer) == {
        "error": "request body has a JSON object with 55 keys (at most 7 expected)"
    }
    assert b"connection" not in headers_sent  # a well-framed request: keep the connection
    assert counted == ["json_shape"]


async def test_only_the_shape_checked_prefixes_are_parsed_for_their_shape(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # A v2 body is not validated by pydantic (no error per key): its decoder's one parse is enough.
    def no_parse(*_: Any, **__: Any) -> None:
        raise AssertionError("parsed")

    monkeypatch.setattr("serving.server.middleware.body_guard.json.loads", no_parse)
    body = json.dumps({"inputs": [{f"k{i}": 1 for i in range(50)}]}).encode()
    guard = {"max_object_keys": 7, "media_types": {"/v1/": {"application/json"}, "/v2/": {""}}}
    status, _, _, app, _ = await call([body], {"content-type": ""}, "/v2/models/m/infer", **guard)
    assert status == 200 and app.bodies == [body]


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        (ORDER, None),
        ({"orders": [ORDER] * 1000}, None),
        ({"orders": [ORDER] * 1001}, None),  # pydantic's one too_long error says it
        (
            {"orders": [{**ORDER, "x": 1, "y": 2, "z": 3}]},
            "a JSON object with 8 keys (at most 7 expected)",
        ),
        ([[[{str(i): i for i in range(8)}]]], "a JSON object with 8 keys (at most 7 expected)"),
        (
            {"a": {"b": {"c": [{str(i): i for i in range(8)}]}}},
            "a JSON object with 8 keys (at most 7 expected)",
        ),
        ({"a": "1:2:3:4:5:6:7:8:9"}, None),  # colons in strings are not keys
        ({f"{i}:": i for i in range(8)}, "a JSON object with 8 keys (at most 7 expected)"),
    ],
)
def test_json_shape_problem_finds_any_oversized_object(document: Any, problem: str | None) -> None:
    assert json_shape_problem(json.dumps(document).encode(), 7) == problem


def test_a_body_with_too_few_colons_for_an_oversized_object_is_not_parsed(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    def no_parse(*_: Any, **__: Any) -> None:
        raise AssertionError("parsed")

    monkeypatch.setattr("serving.server.middleware.body_guard.json.loads", no_parse)
    assert json_shape_problem(json.dumps(ORDER).encode(), len(ORDER)) is None


@pytest.mark.parametrize("body", [b"{not json", b"\xff\xfe", b"[" * 100_000])
def test_a_body_that_is_not_json_is_left_to_the_apps_own_error(body: bytes) -> None:
    assert json_shape_problem(body, 7) is None


async def test_a_client_leaving_mid_body_still_gets_a_response_start() -> None:
    # BentoML's TimeoutMiddleware waits for one, for 30 s, before the request task can end.
    status, _, body, app, read = await call([])  # the first receive is a disconnect
    assert (status, read) == (499, 0) and app.bodies == []
    assert json.loads(body) == {"error": "client closed the request"}
