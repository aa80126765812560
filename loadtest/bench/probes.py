"""One-off HTTP probes of a running server: lone-request latency, /metrics samples (adaptive
batching counters, ...), the model version."""

from __future__ import annotations

import http.client
import json
import re
import statistics
import time
import urllib.request
from urllib.parse import urlsplit


def sequential_timings_ms(url: str, body: bytes, requests: int) -> tuple[list[float], int]:
    """(latency of each request in ms, how many were not 2xx) of ``requests`` predictions of
    ``body`` sent one after another on one keep-alive connection: what a lone client sees when
    nothing else is queued."""
    parts = urlsplit(url)
    if parts.hostname is None:
        raise ValueError(f"no host in {url!r}")
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    timings, failed = [], 0
    try:
        for _ in range(requests):
            started = time.perf_counter()
            connection.request("POST", "/v1/predict", body, {"Content-Type": "application/json"})
            response = connection.getresponse()
            response.read()
            timings.append((time.perf_counter() - started) * 1000.0)
            failed += not 200 <= response.status < 300
    finally:
        connection.close()
    return timings, failed


def sequential_p50_ms(url: str, body: bytes, requests: int = 60) -> float:
    """Median latency of one-at-a-time predictions of ``body`` (one order of the served
    contract: ``WrkBodies.probe``): :func:`sequential_timings_ms`'s median."""
    return statistics.median(sequential_timings_ms(url, body, requests)[0])


_SAMPLE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})?\s+(\S+)")
_LABEL = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"')


def metric_sum(text: str, name: str, **labels: str) -> float:
    """Sum of the samples called ``name`` whose labels include ``labels`` (over workers and
    every other label), from Prometheus text exposition."""
    total = 0.0
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match is None or match.group(1) != name:
            continue
        found = dict(_LABEL.findall(match.group(2) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(match.group(3))
    return total


def metrics_text(url: str) -> str:
    """The server's /metrics page."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
        return str(response.read().decode())


def batch_metrics(url: str) -> tuple[float, float]:
    """(model batches, requests in them) summed over workers, from /metrics."""
    text = metrics_text(url)
    return (
        metric_sum(text, "bentoml_service_adaptive_batch_size_count"),
        metric_sum(text, "bentoml_service_adaptive_batch_size_sum"),
    )


def model_version(url: str) -> str:
    """The model version a server reports on /health."""
    with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
        return str(json.load(response)["model_version"])
