"""Untrusted clients against a real server (2 workers, both tokens set): metric labels from a
fixed set whatever they send, a bounded cost per invalid request, bearer-token auth on
/v1/feedback and /metrics, and a joined-feedback counter equal to the joins made.

One server for the whole module (issue #12, findings 1, 2/6 and 5).
"""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from serving.telemetry.labels import ROUTE_LABELS
from tests.harness.local_server import LocalServer, local_server
from tests.service.conftest import ORDER

FEEDBACK_TOKEN = "feedback-token-for-tests"
METRICS_TOKEN = "metrics-token-for-tests"
SCRAPE_CACHE_S = 1.0  # the service's default
SAMPLE = re.compile(r"^([a-zA-Z_:][\w:]*)(\{[^}]*\})?(?= )")


@pytest.fixture(scope="module")
def guarded(registered, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:  # type: ignore[no-untyped-def]
    workdir = tmp_path_factory.mktemp("guarded")
    env = {
        "DELIVERY_ETA_MODEL_TAG": registered.tag,
        "DELIVERY_ETA_WORKERS": "2",
        "DELIVERY_ETA_PREDICTION_LOG_PATH": str(workdir / "predictions.sqlite3"),
        "DELIVERY_ETA_FEEDBACK_TOKEN": FEEDBACK_TOKEN,
        "DELIVERY_ETA_METRICS_TOKEN": METRICS_TOKEN,
        # the production default (the harness turns the cache off for other tests)
        "DELIVERY_ETA_METRICS_CACHE_S": str(SCRAPE_CACHE_S),
    }
    with local_server(workdir / "server.log", env=env) as server:
        yield server


def _post(server: LocalServer, path: str, body: object, **headers: str) -> httpx.Response:
    # a new connection per request, so both workers get traffic
    return httpx.post(
        f"{server.url}{path}",
        content=json.dumps(body).encode(),
        headers={"content-type": "application/json", **headers},
        timeout=60,
    )


def _feedback(server: LocalServer, body: object, token: str = FEEDBACK_TOKEN) -> httpx.Response:
    return _post(server, "/v1/feedback", body, authorization=f"Bearer {token}")


def _scrape(server: LocalServer) -> str:
    """A scrape that reflects everything sent so far (older than the worker's cached one)."""
    time.sleep(SCRAPE_CACHE_S + 0.2)
    response = httpx.get(
        f"{server.url}/metrics", headers={"authorization": f"Bearer {METRICS_TOKEN}"}, timeout=30
    )
    assert response.status_code == 200, response.text[:300]
    return response.text


def _series(text: str, prefix: str = "") -> dict[str, str]:
    """The series of a scrape whose name starts with ``prefix`` -- by default every one, ours
    and BentoML's (its ``endpoint`` label is normalised by serving.server.edge.paths) --
    ``{name{labels}: sample line}``."""
    return {
        match.group(0): line
        for line in text.splitlines()
        if (match := SAMPLE.match(line)) is not None and match.group(1).startswith(prefix)
    }


def _value(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def _flood(server: LocalServer, rounds: int) -> None:
    """Every attacker-controlled label vector ``rounds`` times, with new values each round."""
    stamp = time.monotonic_ns()
    for i in range(rounds):
        unique = f"{stamp}_{i}"
        assert _post(server, "/v1/predict", {**ORDER, f"unknown_{unique}": 1}).status_code == 400
        # a batch whose every order carries a different unknown key
        orders = [{**ORDER, f"k{unique}_{row}": 1} for row in range(50)]
        assert _post(server, "/v1/predict/batch", {"orders": orders}).status_code == 400
        huge_key = f"h{unique}" + "x" * 200_000
        assert _post(server, "/v1/predict", {**ORDER, huge_key: 1}).status_code == 400
        assert _post(server, f"/v1/no_such_route_{unique}", ORDER).status_code == 404
        assert httpx.get(f"{server.url}/v1/{unique}", timeout=30).status_code == 404


def test_the_route_labels_are_the_served_routes(guarded: LocalServer) -> None:
    served = httpx.get(f"{guarded.url}/docs.json", timeout=30).json()["paths"]
    assert {path for path in served if path.startswith("/v1/")} == ROUTE_LABELS


def test_label_floods_add_no_series(guarded: LocalServer) -> None:
    _flood(guarded, rounds=1)  # the fixed set's own series (field="other", route="unmatched")
    before = _scrape(guarded)
    _flood(guarded, rounds=20)
    after = _scrape(guarded)

    before_series, after_series = _series(before), _series(after)
    # BentoML labels one gauge with the worker's pid: a series per worker process (bounded by
    # the worker count and restarts, not by clients), which appears once that worker answers.
    new = sorted(s for s in set(after_series) - set(before_series) if 'pid="' not in s)
    assert new == [], f"{len(new)} new series, e.g. {[s[:200] for s in new[:3]]}"
    assert len(after) < 1.05 * len(before), (len(before), len(after))
    assert max(len(line) for line in after.splitlines()) < 1000
    # the floods were counted, under the fixed labels
    assert (
        _value(after, "delivery_eta_validation_errors_total", field="other")
        >= _value(before, "delivery_eta_validation_errors_total", field="other") + 3 * 20
    )
    assert _value(after, "delivery_eta_errors_total", route="unmatched") >= 2 * 20


def test_invalid_request_with_thousands_of_bad_fields_costs_little(guarded: LocalServer) -> None:
    # 1000 orders, each out of range twice and with an unknown key: 3000 bad fields
    orders = [
        {**ORDER, "distance_km": 99, "is_peak_hour": 7, f"unknown_{row}": "v" * 100}
        for row in range(1000)
    ]
    body = {"orders": orders}
    before = _series(_scrape(guarded), "delivery_eta_")
    response = _post(guarded, "/v1/predict/batch", body, **{"x-request-id": "bad-fields-3000"})
    after = _scrape(guarded)

    assert response.status_code == 400
    assert len(response.content) < 4096, len(response.content)
    answer = response.json()
    assert answer["error_count"] == 3000
    assert len(answer["detail"]) == 10
    assert answer["detail"][0]["loc"] == ["orders", 0, "distance_km"]
    # at most one update per fixed (route, field) pair: distance_km, is_peak_hour, other
    new = set(_series(after, "delivery_eta_")) - set(before)
    assert len(new) <= 3, sorted(new)
    assert all('route="/v1/predict/batch"' in series for series in new), sorted(new)
    line = next(
        line for line in guarded.log().splitlines() if '"request_id": "bad-fields-3000"' in line
    )
    assert len(line.encode()) <= 8192, len(line.encode())
    assert json.loads(line)["status"] == 400


def test_a_huge_unknown_key_is_not_echoed(guarded: LocalServer) -> None:
    huge_key = "z" * 500_000
    response = _post(guarded, "/v1/predict", {**ORDER, huge_key: 1}, **{"x-request-id": "hugekey"})
    assert response.status_code == 400
    assert len(response.content) < 4096, len(response.content)
    # The request's log line is written after the answer is sent (and a busy machine flushes it
    # later still): wait for it rather than read the log once.
    deadline = time.monotonic() + 15
    while not (
        lines := [line for line in guarded.log().splitlines() if '"request_id": "hugekey"' in line]
    ):
        assert time.monotonic() < deadline, "no log line for the request"
        time.sleep(0.1)
    assert len(lines[0].encode()) <= 8192, len(lines[0].encode())


# ------------------------------------------------------------------------------ authentication

WRONG_CREDENTIALS = [
    {},
    {"authorization": "Bearer wrong"},
    {"authorization": f"Bearer {FEEDBACK_TOKEN}x"},
    {"authorization": f"Basic {FEEDBACK_TOKEN}"},
    {"authorization": FEEDBACK_TOKEN},
    {"authorization": f"Bearer {METRICS_TOKEN}"},  # the other route's token
]


@pytest.mark.parametrize("headers", WRONG_CREDENTIALS)
def test_feedback_without_its_token_is_401_saying_nothing_more(
    guarded: LocalServer, headers: dict[str, str]
) -> None:
    body = {"prediction_id": "00000000-0000-4000-8000-000000000000", "actual_delivery_time_min": 20}
    response = _post(guarded, "/v1/feedback", body, **headers)
    assert response.status_code == 401
    assert response.json() == {"error": "unauthorized"}
    assert response.headers["www-authenticate"] == 'Bearer realm="delivery-eta"'


@pytest.mark.parametrize(
    "headers", [{}, {"authorization": "Bearer nope"}, {"authorization": f"Bearer {FEEDBACK_TOKEN}"}]
)
def test_metrics_without_its_token_is_401(guarded: LocalServer, headers: dict[str, str]) -> None:
    response = httpx.get(f"{guarded.url}/metrics", headers=headers, timeout=30)
    assert response.status_code == 401
    assert response.json() == {"error": "unauthorized"}
    assert response.headers["www-authenticate"] == 'Bearer realm="delivery-eta"'


def test_predictions_and_probes_need_no_token(guarded: LocalServer) -> None:
    assert _post(guarded, "/v1/predict", ORDER).status_code == 200
    for probe in ("/livez", "/readyz", "/health"):
        assert httpx.get(f"{guarded.url}{probe}", timeout=30).status_code == 200


@pytest.mark.parametrize("actual", [1e-320, 0.5, 300.5, 600.0])
def test_implausible_delivery_times_are_400(guarded: LocalServer, actual: float) -> None:
    prediction = _post(guarded, "/v1/predict", ORDER).json()
    body = {"prediction_id": prediction["prediction_id"], "actual_delivery_time_min": actual}
    response = _feedback(guarded, body)
    assert response.status_code == 400, response.text
    assert response.json()["detail"][0]["loc"] == ["actual_delivery_time_min"]


# ------------------------------------------------------------------------------ joined counter


def test_joined_counter_equals_joins_with_two_workers(guarded: LocalServer) -> None:
    joins = 40
    with ThreadPoolExecutor(8) as pool:
        predictions = list(pool.map(lambda _: _post(guarded, "/v1/predict", ORDER), range(joins)))
    assert [p.status_code for p in predictions] == [200] * joins
    time.sleep(0.5)  # every worker's background writer has recorded its predictions
    before = _scrape(guarded)

    labels = [
        {"prediction_id": p.json()["prediction_id"], "actual_delivery_time_min": 20.0 + i % 30}
        for i, p in enumerate(predictions)
    ]
    # each label sent 3 times at once (a client retrying, a duplicate delivery of the event)
    with ThreadPoolExecutor(16) as pool:
        receipts = list(pool.map(lambda body: _feedback(guarded, body), labels * 3))
    after = _scrape(guarded)

    assert [r.status_code for r in receipts] == [200] * (3 * joins)
    statuses = [r.json()["status"] for r in receipts]
    assert statuses.count("joined") == joins
    joined = _value(after, "delivery_eta_feedback_total", result="joined") - _value(
        before, "delivery_eta_feedback_total", result="joined"
    )
    duplicate = _value(after, "delivery_eta_feedback_total", result="duplicate") - _value(
        before, "delivery_eta_feedback_total", result="duplicate"
    )
    assert (joined, duplicate) == (joins, 2 * joins)


@pytest.mark.parametrize(
    "request_line",
    [
        b"GET //metrics",
        b"GET /metrics/",
        b"GET /metrics?format=text",
        b"HEAD /metrics",
        b"GET /%6Detrics",
        b"POST /v1//feedback",
        b"POST /v1/feedback/",
        b"POST /v1%2Ffeedback",
        b"POST /V1/feedback",
        b"POST /v1/feedback?x=1",
    ],
)
def test_no_spelling_of_a_protected_path_gets_past_its_token(
    guarded: LocalServer, request_line: bytes
) -> None:
    # The token check matches exact paths after the edge collapsed unknown ones to /unmatched:
    # every variant must be refused (401) or unknown (404/405), never answered.
    body = json.dumps(
        {"prediction_id": "0" * 8 + "-0000-4000-8000-" + "0" * 12, "actual_delivery_time_min": 30}
    ).encode()
    port = int(guarded.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(
            request_line
            + b" HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nConnection: close\r\n"
            + b"Content-Length: %d\r\n\r\n" % len(body)
            + body
        )
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    status = int(answer.split(b" ", 2)[1])
    assert status in (401, 404, 405), answer[:300]
