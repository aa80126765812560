"""Observability end to end: a real Prometheus scrapes the real service (2 workers).

Counts and the online MAE seen through the Prometheus HTTP API must equal what the test sent;
shifted inputs must raise the drift PSI of that feature only.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import yaml

from serving.settings import TelemetrySettings
from tests.harness.local_server import ROOT, LocalServer, free_port, local_server
from tests.service.conftest import ORDER

SCRAPE_S = 1
# Each worker answers /metrics from a rendering up to this old (serving/server/middleware/scrape_cache.py).
METRICS_CACHE_S = float(TelemetrySettings.model_fields["metrics_cache_s"].default)


@pytest.fixture(scope="module")
def observed_server(registered, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:  # type: ignore[no-untyped-def]
    workdir = tmp_path_factory.mktemp("observed")
    env = {
        "DELIVERY_ETA_MODEL_TAG": registered.tag,
        "DELIVERY_ETA_WORKERS": "2",
        "DELIVERY_ETA_PREDICTION_LOG_PATH": str(workdir / "predictions.sqlite3"),
        "DELIVERY_ETA_DRIFT_WINDOW_ROWS": "500",
        # scraped as in production: with the default scrape cache (the harness turns it off)
        "DELIVERY_ETA_METRICS_CACHE_S": str(METRICS_CACHE_S),
    }
    with local_server(workdir / "server.log", env=env) as server:
        yield server


@pytest.fixture(scope="module")
def prometheus(
    observed_server: LocalServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("prometheus not installed: run `make system-deps`")
    workdir = tmp_path_factory.mktemp("prometheus")
    config = yaml.safe_load((ROOT / "deploy/monitoring/prometheus.yml").read_text())
    config["global"] = {"scrape_interval": f"{SCRAPE_S}s", "evaluation_interval": f"{SCRAPE_S}s"}
    config["rule_files"] = [
        str(ROOT / "deploy/monitoring/rules" / Path(f).name) for f in config["rule_files"]
    ]
    target = observed_server.url.removeprefix("http://")
    for job in config["scrape_configs"]:
        job.pop("scrape_timeout", None)
        job["scrape_interval"] = f"{SCRAPE_S}s"
        job["static_configs"] = [{"targets": [target]}]
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(workdir / "prometheus.log").open("wb"),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, (workdir / "prometheus.log").read_text()[-2000:]
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def _query(prometheus: str, expr: str) -> float:
    """Scalar value of ``expr`` (0 when it has no series)."""
    response = httpx.get(f"{prometheus}/api/v1/query", params={"query": expr}, timeout=5).json()
    assert response["status"] == "success", response
    result = response["data"]["result"]
    return float(result[0]["value"][1]) if result else 0.0


def _scraped_after(prometheus: str, moment: float) -> None:
    """Wait until Prometheus has a scrape of the service that reflects everything up to
    ``moment``: one that started once a rendering cached before then had expired."""
    moment += METRICS_CACHE_S
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if _query(prometheus, 'timestamp(up{job="delivery-eta"})') > moment:
            return
        time.sleep(0.25)
    raise AssertionError("Prometheus did not scrape the service")


COUNTED = {
    "validation_distance": 'sum(delivery_eta_validation_errors_total{field="distance_km"})',
    "validation_driver": 'sum(delivery_eta_validation_errors_total{field="driver_id"})',
    "validation_requests": 'sum(delivery_eta_errors_total{category="validation",route="/v1/predict"})',
    "predict_requests": 'sum(bentoml_service_request_total{endpoint="/v1/predict"})',
    "predict_2xx": 'sum(bentoml_service_request_total{endpoint="/v1/predict",http_response_code="200"})',
    "joined": 'sum(delivery_eta_feedback_total{result="joined"})',
    "duplicate": 'sum(delivery_eta_feedback_total{result="duplicate"})',
    "unknown": 'sum(delivery_eta_feedback_total{result="unknown"})',
    "abs_error_sum": "sum(delivery_eta_online_absolute_error_minutes_sum)",
    "abs_error_count": "sum(delivery_eta_online_absolute_error_minutes_count)",
    "covered": 'sum(delivery_eta_interval_hits_total{covered="true"})',
}


def test_prometheus_sees_exactly_the_traffic_sent(
    observed_server: LocalServer, prometheus: str
) -> None:
    _scraped_after(prometheus, time.time())
    before = {name: _query(prometheus, expr) for name, expr in COUNTED.items()}

    def fresh_post(path: str, payload: dict) -> httpx.Response:  # type: ignore[type-arg]
        # a new connection per request, so both workers get traffic
        return httpx.post(f"{observed_server.url}{path}", json=payload, timeout=30)

    orders = [{**ORDER, "distance_km": 1 + i * 0.3} for i in range(40)]
    bad = [{**ORDER, "distance_km": -1}] * 3 + [
        {k: v for k, v in ORDER.items() if k != "driver_id"}
    ] * 4
    with ThreadPoolExecutor(8) as pool:
        good = list(pool.map(lambda o: fresh_post("/v1/predict", o), orders))
        rejected = list(pool.map(lambda o: fresh_post("/v1/predict", o), bad))
    assert [r.status_code for r in good] == [200] * 40
    assert [r.status_code for r in rejected] == [400] * 7

    predictions = [r.json() for r in good[:20]]
    actuals = [
        p["predicted_delivery_time_min"] + (-1) ** i * (i % 7) for i, p in enumerate(predictions)
    ]
    with ThreadPoolExecutor(8) as pool:
        receipts = list(
            pool.map(
                lambda pa: fresh_post(
                    "/v1/feedback",
                    {"prediction_id": pa[0]["prediction_id"], "actual_delivery_time_min": pa[1]},
                ),
                zip(predictions, actuals, strict=True),
            )
        )
    assert [r.status_code for r in receipts] == [200] * 20
    assert {r.json()["status"] for r in receipts} == {"joined"}
    for p, actual in list(zip(predictions, actuals, strict=True))[:2]:
        again = fresh_post(
            "/v1/feedback",
            {"prediction_id": p["prediction_id"], "actual_delivery_time_min": actual},
        )
        assert again.json()["status"] == "duplicate"
    unknown = fresh_post(
        "/v1/feedback",
        {"prediction_id": "00000000-0000-4000-8000-000000000000", "actual_delivery_time_min": 20},
    )
    assert unknown.status_code == 404

    expected_errors = [
        abs(a - p["predicted_delivery_time_min"]) for p, a in zip(predictions, actuals, strict=True)
    ]
    expected_covered = sum(
        p["confidence_interval_lower"] <= a <= p["confidence_interval_upper"]
        for p, a in zip(predictions, actuals, strict=True)
    )
    _scraped_after(prometheus, time.time())
    after = {name: _query(prometheus, expr) for name, expr in COUNTED.items()}
    delta = {name: after[name] - before[name] for name in COUNTED}

    assert delta["validation_distance"] == 3
    assert delta["validation_driver"] == 4
    assert delta["validation_requests"] == 7
    assert delta["predict_requests"] == 47
    assert delta["predict_2xx"] == 40
    assert (delta["joined"], delta["duplicate"], delta["unknown"]) == (20, 2, 1)
    assert delta["abs_error_count"] == 20
    assert delta["abs_error_sum"] / delta["abs_error_count"] == pytest.approx(
        sum(expected_errors) / len(expected_errors), abs=1e-6
    )
    assert delta["covered"] == expected_covered
    # both workers answered, so the sums above really aggregate across processes
    workers = _query(
        prometheus, "count(count by (worker_index) (bentoml_service_adaptive_batch_size_count))"
    )
    assert workers == 2
    # the rule files load and evaluate against the real metrics
    rules = httpx.get(f"{prometheus}/api/v1/rules", timeout=5).json()["data"]["groups"]
    assert rules and all(rule["health"] == "ok" for group in rules for rule in group["rules"]), (
        json.dumps(rules)[:2000]
    )


def test_request_id_is_echoed_and_in_the_services_log_lines(observed_server: LocalServer) -> None:
    response = httpx.post(
        f"{observed_server.url}/v1/predict",
        json={**ORDER, "distance_km": "bad"},
        headers={"X-Request-ID": "trace-me-123"},
        timeout=10,
    )
    assert response.status_code == 400
    assert response.headers["x-request-id"] == "trace-me-123"
    httpx.get(f"{observed_server.url}/livez")
    time.sleep(0.5)
    lines = [
        json.loads(line) for line in observed_server.log().splitlines() if "trace-me-123" in line
    ]
    assert lines, "no log line carries the request id"
    (line,) = lines
    assert line["level"] == "WARNING" and line["error_category"] == "validation"
    assert (
        "distance_km" in line["error"] and line["status"] == 400 and line["route"] == "/v1/predict"
    )
    assert "Traceback" not in observed_server.log()


def test_readme_log_line_example_is_the_real_line(observed_server: LocalServer) -> None:
    """The README's 400 example: its curl body, sent for real, logs a line with the same
    fields and the same error as the line the README shows."""
    readme = (ROOT / "README.md").read_text()
    errors = readme.split("### Errors", 1)[1]
    shown = json.loads(
        next(line for line in errors.splitlines() if '"logger": "delivery_eta.request"' in line)
    )
    body = errors.split("-d '", 1)[1].split("'", 1)[0]
    response = httpx.post(
        f"{observed_server.url}/v1/predict",
        content=body,
        headers={"Content-Type": "application/json", "X-Request-ID": "readme-example"},
        timeout=10,
    )
    assert response.status_code == 400
    time.sleep(0.5)
    (real,) = [
        json.loads(line) for line in observed_server.log().splitlines() if "readme-example" in line
    ]
    assert set(real) == set(shown)
    for name in ("level", "logger", "route", "method", "status", "error", "error_category"):
        assert real[name] == shown[name], name


def _psi(server: LocalServer) -> dict[str, float]:
    # A worker answers from a rendering up to METRICS_CACHE_S old (Prometheus scrapes it every
    # second here): on a quiet machine the whole send takes ~0.1 s, so read after a fresh one.
    time.sleep(METRICS_CACHE_S + 0.2)
    text = httpx.get(f"{server.url}/metrics", timeout=5).text
    scores: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("delivery_eta_feature_psi{"):
            feature = line.split('feature="', 1)[1].split('"', 1)[0]
            scores[feature] = float(line.rsplit(" ", 1)[1])
        elif line.startswith("delivery_eta_prediction_psi{"):
            scores["prediction"] = float(line.rsplit(" ", 1)[1])
    return scores


def test_shifted_distance_raises_its_psi_above_the_alert_threshold_only(
    observed_server: LocalServer, registered
) -> None:  # type: ignore[no-untyped-def]
    holdout = registered.result.holdout

    def orders(rows, distance_factor: float) -> list[dict]:  # type: ignore[no-untyped-def,type-arg]
        return [
            {
                "restaurant_id": r.restaurant_id,
                "driver_id": r.driver_id,
                "distance_km": min(float(r.distance_km) * distance_factor, 50.0),
                "is_peak_hour": int(r.is_peak_hour),
                "order_value": float(r.order_value),
            }
            for r in rows.itertuples()
        ]

    def send(batch: list[dict]) -> None:  # type: ignore[type-arg]
        for start in range(0, len(batch), 50):  # fresh connections: every worker's window fills
            chunk = batch[start : start + 50]
            assert (
                httpx.post(
                    f"{observed_server.url}/v1/predict/batch", json={"orders": chunk}, timeout=30
                ).status_code
                == 200
            )

    send(orders(holdout.iloc[:2000], 1.0))
    calm = _psi(observed_server)
    assert set(calm) >= {"distance_km", "order_value", "is_peak_hour", "prediction"}
    assert max(calm.values()) < 0.2, calm

    send(orders(holdout.iloc[2000:3200], 3.0))
    drifted = _psi(observed_server)
    assert drifted["distance_km"] > 0.2, drifted
    others = {k: v for k, v in drifted.items() if k not in ("distance_km", "prediction")}
    assert max(others.values()) < 0.2, drifted
