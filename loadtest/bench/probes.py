"""One-off HTTP probes of a running server: lone-request latency, adaptive batching counters."""

from __future__ import annotations

import http.client
import json
import statistics
import time
import urllib.request
from urllib.parse import urlsplit


def sequential_p50_ms(url: str, body: bytes, requests: int = 60) -> float:
    """Median latency of one-at-a-time predictions of ``body`` (one order of the served
    contract: ``WrkBodies.probe``) on one keep-alive connection: what a lone client sees when
    nothing else is queued."""
    parts = urlsplit(url)
    if parts.hostname is None:
        raise ValueError(f"no host in {url!r}")
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    timings = []
    try:
        for _ in range(requests):
            started = time.perf_counter()
            connection.request("POST", "/v1/predict", body, {"Content-Type": "application/json"})
            response = connection.getresponse()
            response.read()
            timings.append((time.perf_counter() - started) * 1000.0)
    finally:
        connection.close()
    return statistics.median(timings)


def batch_metrics(url: str) -> tuple[float, float]:
    """(model batches, requests in them) summed over workers, from /metrics."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
        text = response.read().decode()
    batches = requests = 0.0
    for line in text.splitlines():
        if line.startswith("bentoml_service_adaptive_batch_size_count"):
            batches += float(line.rsplit(" ", 1)[1])
        elif line.startswith("bentoml_service_adaptive_batch_size_sum"):
            requests += float(line.rsplit(" ", 1)[1])
    return batches, requests


def model_version(url: str) -> str:
    """The model version a server reports on /health."""
    with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
        return str(json.load(response)["model_version"])
