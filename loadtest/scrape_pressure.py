"""Prediction latency while clients scrape /metrics in a loop (issue #12: 4 scrapers pushed
the prediction p50 to 650 ms when every scrape rendered every worker's metric files).

    python -m loadtest.scrape_pressure --url http://127.0.0.1:3000 [--scrapers 4] [--seconds 20]
        [--metrics-token TOKEN] [--warm-series 0]

Optionally fills /metrics with ``--warm-series`` validation-error requests first (a realistic
scrape is hundreds of KB), then runs ``--scrapers`` threads that GET /metrics back to back,
each on its own connection, while one client sends single predictions one at a time on a
keep-alive connection; prints the prediction p50/p95 with and without the scrapers, and the
scrapes per second served. Loopback only, like every load here.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import threading
import time
from urllib.parse import urlsplit

from models.contract.bodies import example_order
from models.served_contract import fetch_contract


def _predict_latencies(host: str, port: int, seconds: float, body: str) -> list[float]:
    connection = http.client.HTTPConnection(host, port, timeout=60)
    headers = {"content-type": "application/json"}
    latencies: list[float] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.perf_counter()
        connection.request("POST", "/v1/predict", body, headers)
        response = connection.getresponse()
        response.read()
        assert response.status == 200, response.status
        latencies.append((time.perf_counter() - started) * 1000)
    connection.close()
    return latencies


def _scrape_loop(
    host: str, port: int, token: str | None, stop: threading.Event, counts: list[int]
) -> None:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    while not stop.is_set():
        connection = http.client.HTTPConnection(host, port, timeout=60)
        connection.request("GET", "/metrics", headers=headers)
        response = connection.getresponse()
        response.read()
        connection.close()
        assert response.status == 200, response.status
        counts.append(1)


def _summary(latencies: list[float]) -> str:
    cuts = statistics.quantiles(latencies, n=20)
    return (
        f"p50 {statistics.median(latencies):.1f} ms, p95 {cuts[18]:.1f} ms ({len(latencies)} calls)"
    )


def main() -> None:
    """Parse the flags, measure without and with scrapers, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:3000")
    parser.add_argument("--scrapers", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--metrics-token", default=None)
    parser.add_argument("--warm-series", type=int, default=0)
    args = parser.parse_args()
    target = urlsplit(args.url)
    host, port = target.hostname or "127.0.0.1", target.port or 80
    order = example_order(fetch_contract(args.url))  # the served contract's example
    for i in range(args.warm_series):  # on today's code each makes a new series
        connection = http.client.HTTPConnection(host, port, timeout=60)
        connection.request(
            "POST",
            "/v1/predict",
            json.dumps({**order, f"warm_{i}": 1}),
            {"content-type": "application/json"},
        )
        connection.getresponse().read()
        connection.close()

    print(
        "alone:        ", _summary(_predict_latencies(host, port, args.seconds, json.dumps(order)))
    )
    stop, counts = threading.Event(), []
    scrapers = [
        threading.Thread(target=_scrape_loop, args=(host, port, args.metrics_token, stop, counts))
        for _ in range(args.scrapers)
    ]
    for thread in scrapers:
        thread.start()
    try:
        with_scrapers = _predict_latencies(host, port, args.seconds, json.dumps(order))
    finally:
        stop.set()
        for thread in scrapers:
            thread.join()
    print(
        f"{args.scrapers} scrapers:   ",
        _summary(with_scrapers),
        f"{len(counts) / args.seconds:.0f} scrapes/s",
    )


if __name__ == "__main__":
    main()
