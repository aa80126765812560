"""Client traffic for the local stack, and the figures a fault reports.

:class:`SteadyLoad` keeps a few client threads sending single predictions through HAProxy
(keep-alive connections, as a client's pool would) and records every outcome with its time,
so a fault test can count the requests that failed while a replica or Redis was gone.
:func:`send_labels` sends the actual delivery time of chosen predictions through HAProxy (each
label lands on whichever replica the balancer picks). :class:`FaultFigures` is one fault's
table: printed, and appended to a results file the docs quote.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

Order = dict[str, Any]


@dataclass(frozen=True)
class Sent:
    """One prediction request: when it started and ended, what came back."""

    started: float
    ended: float
    status: int | None
    """HTTP status, or None when no response arrived (refused, reset, timed out)."""
    prediction_id: str | None = None
    predicted: float | None = None
    sources: frozenset[str] = frozenset()
    """Where its features came from (``features_source`` values: online / default / request)."""
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status == 200


class SteadyLoad:
    """``threads`` clients sending ``order_for(i)`` to ``url``/v1/predict until stopped."""

    def __init__(
        self,
        url: str,
        order_for: Callable[[int], Order],
        *,
        threads: int = 4,
        pause_s: float = 0.005,
        timeout_s: float = 15.0,
    ) -> None:
        self.url = url
        self._order_for = order_for
        self._pause_s = pause_s
        self._timeout_s = timeout_s
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._counter = 0
        self.sent: list[Sent] = []
        self._threads = [
            threading.Thread(target=self._work, name=f"steady-{i}", daemon=True)
            for i in range(threads)
        ]

    def __enter__(self) -> SteadyLoad:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=self._timeout_s + 5)

    def count(self) -> int:
        with self._lock:
            return len(self.sent)

    def wait_for(self, answered: int, timeout_s: float = 60) -> None:
        """Until ``answered`` more requests have been sent and answered."""
        target = self.count() + answered
        deadline = time.monotonic() + timeout_s
        while self.count() < target:
            if time.monotonic() > deadline:
                raise TimeoutError(f"load stalled at {self.count()} requests")
            time.sleep(0.05)

    def between(self, start: float, end: float) -> list[Sent]:
        """Requests that started in [start, end)."""
        with self._lock:
            return [s for s in self.sent if start <= s.started < end]

    def _work(self) -> None:
        with httpx.Client(base_url=self.url, timeout=self._timeout_s) as client:
            while not self._stop.is_set():
                with self._lock:
                    self._counter += 1
                    index = self._counter
                started = time.monotonic()
                try:
                    response = client.post("/v1/predict", json=self._order_for(index))
                except httpx.HTTPError as exc:
                    sent = Sent(started, time.monotonic(), None, error=repr(exc))
                else:
                    sent = _answered(started, response)
                with self._lock:
                    self.sent.append(sent)
                time.sleep(self._pause_s)


def _answered(started: float, response: httpx.Response) -> Sent:
    ended = time.monotonic()
    if response.status_code != 200:
        return Sent(started, ended, response.status_code, error=response.text[:200])
    body = response.json()
    return Sent(
        started,
        ended,
        200,
        prediction_id=body["prediction_id"],
        predicted=float(body["predicted_delivery_time_min"]),
        sources=frozenset(body["features_source"].values()),
    )


def actual_for(sent: Sent) -> float:
    """The 'actual' delivery time the tests report for a prediction: off by a known amount
    that depends on the id, so the online MAE they expect is known exactly."""
    assert sent.predicted is not None and sent.prediction_id is not None
    offset = 1.0 + sum(map(ord, sent.prediction_id)) % 8
    return round(sent.predicted + offset, 3)


@dataclass(frozen=True)
class LabelResults:
    """What :func:`send_labels` got back, per prediction."""

    statuses: dict[str, str]
    """prediction id -> ``joined`` / ``duplicate`` / ``http <status>`` / the transport error."""
    errors: dict[str, float]
    """prediction id -> the absolute error the receipt reports (joined or duplicate)."""

    @property
    def joined(self) -> int:
        return sum(1 for status in self.statuses.values() if status == "joined")


LOG_LAG_S = 1.0
"""Seconds between a prediction's answer and its label: a prediction reaches the shared log
after its worker's next flush, and with a shadow challenger only once the challenger scored it
(DELIVERY_ETA_SHADOW_INTERVAL_MS, 50 ms), so a label sent at once to another replica may find
nothing yet (404). Real labels come when the delivery ends, minutes later."""


def send_labels(
    url: str,
    headers: dict[str, str],
    predictions: Sequence[Sent],
    threads: int = 4,
    settle_s: float = LOG_LAG_S,
) -> LabelResults:
    """POST /v1/feedback through ``url`` for each of ``predictions`` (answered ones), ``settle_s``
    after the last of them was answered."""
    labelled = [p for p in predictions if p.ok]
    if labelled:
        time.sleep(max(0.0, max(p.ended for p in labelled) + settle_s - time.monotonic()))

    def label(client: httpx.Client, sent: Sent) -> tuple[str, str, float | None]:
        assert sent.prediction_id is not None
        body = {"prediction_id": sent.prediction_id, "actual_delivery_time_min": actual_for(sent)}
        try:
            response = client.post("/v1/feedback", json=body, headers=headers)
        except httpx.HTTPError as exc:
            return sent.prediction_id, repr(exc), None
        if response.status_code != 200:
            return sent.prediction_id, f"http {response.status_code}: {response.text[:120]}", None
        receipt = response.json()
        return sent.prediction_id, str(receipt["status"]), float(receipt["absolute_error_min"])

    with httpx.Client(base_url=url, timeout=15) as client, ThreadPoolExecutor(threads) as pool:
        answers = list(pool.map(lambda sent: label(client, sent), labelled))
    return LabelResults(
        {pid: status for pid, status, _ in answers},
        {pid: error for pid, _, error in answers if error is not None},
    )


@dataclass
class FaultFigures:
    """One fault's figures: printed as a small table and appended to a results file."""

    fault: str
    rows: dict[str, Any] = field(default_factory=dict)

    def add(self, name: str, value: Any) -> None:
        self.rows[name] = value

    def table(self) -> str:
        width = max(len(name) for name in self.rows) if self.rows else 0
        lines = [f"## {self.fault}"]
        for name, value in self.rows.items():
            shown = f"{value:.2f}" if isinstance(value, float) else str(value)
            lines.append(f"  {name:<{width}}  {shown}")
        return "\n".join(lines)

    def append_to(self, results: Path) -> None:
        results.parent.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        with open(results, "a") as out:
            out.write(f"{self.table()}\n  (at {stamp})\n\n")


class HealthWatch:
    """Polls each replica's /health (directly, not through HAProxy) every ``interval_s`` while
    the block runs: ``seen[url]`` is the list of (time, status or the error) it read."""

    def __init__(self, urls: Sequence[str], interval_s: float = 0.2) -> None:
        self.seen: dict[str, list[tuple[float, str]]] = {url: [] for url in urls}
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._work, name="health-watch", daemon=True)

    def __enter__(self) -> HealthWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def statuses(self, url: str, start: float, end: float) -> set[str]:
        """The /health statuses ``url`` reported between ``start`` and ``end``."""
        return {status for at, status in self.seen[url] if start <= at < end}

    def _work(self) -> None:
        with httpx.Client(timeout=2) as client:
            while not self._stop.is_set():
                for url in self.seen:
                    try:
                        status = str(client.get(f"{url}/health").json()["status"])
                    except (httpx.HTTPError, ValueError, KeyError) as exc:
                        status = type(exc).__name__
                    self.seen[url].append((time.monotonic(), status))
                time.sleep(self._interval_s)


def wait_until(predicate: Callable[[], bool], timeout_s: float, interval_s: float = 0.1) -> float:
    """Seconds until ``predicate()`` holds; TimeoutError after ``timeout_s``."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout_s:
            raise TimeoutError(f"not within {timeout_s:.0f} s")
        time.sleep(interval_s)
    return time.monotonic() - started
