"""A small, bounded, loopback-only load generator for the reliability tests.

Threads send requests to one server until told to stop (or a hard deadline passes) and record
the outcome of every request, classified by what the client saw:

* ``answered``: an HTTP response arrived (any status);
* ``refused``: the TCP connection could not be made (nobody listening any more);
* ``dropped``: the connection was made, then closed or reset before a response arrived;
* ``timeout``: no response within the client timeout.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

Request = tuple[str, str, Any]
"""(method, path, json body or None)."""


@dataclass(frozen=True)
class Outcome:
    started: float
    ended: float
    kind: str
    status: int | None = None
    body: Any = None
    error: str = ""
    path: str = ""

    @property
    def answered(self) -> bool:
        return self.kind == "answered"


class Load:
    """``threads`` workers sending ``make_request(i)`` to ``url`` (127.0.0.1 only)."""

    def __init__(
        self,
        url: str,
        make_request: Callable[[int], Request],
        *,
        threads: int = 8,
        keepalive: bool = False,
        timeout_s: float = 30.0,
        max_duration_s: float = 120.0,
        keep_bodies: bool = False,
        stop_on_refused: bool = False,
    ) -> None:
        host = urlsplit(url).hostname
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError(f"load tests send traffic to loopback only, not {host}")
        self.url = url
        self._make_request = make_request
        self._threads = [
            threading.Thread(target=self._work, name=f"load-{i}", daemon=True)
            for i in range(threads)
        ]
        self._keepalive = keepalive
        self._timeout_s = timeout_s
        self._deadline = 0.0
        self._max_duration_s = max_duration_s
        self._keep_bodies = keep_bodies
        self._stop_on_refused = stop_on_refused
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._counter = 0
        self.outcomes: list[Outcome] = []

    def __enter__(self) -> Load:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def start(self) -> None:
        self._deadline = time.monotonic() + self._max_duration_s
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=self._timeout_s + 5)

    def wait_for(self, answered: int, timeout_s: float = 60.0) -> None:
        """Block until at least ``answered`` requests were answered."""
        deadline = time.monotonic() + timeout_s
        while self.count("answered") < answered:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {self.count('answered')} answers after {timeout_s} s")
            time.sleep(0.05)

    def count(self, kind: str) -> int:
        with self._lock:
            return sum(1 for o in self.outcomes if o.kind == kind)

    def summary(self) -> dict[str, int]:
        with self._lock:
            return dict(Counter(o.kind for o in self.outcomes))

    def _next(self) -> int:
        with self._lock:
            self._counter += 1
            return self._counter

    def _work(self) -> None:
        limits = httpx.Limits(max_keepalive_connections=None if self._keepalive else 0)
        with httpx.Client(base_url=self.url, timeout=self._timeout_s, limits=limits) as client:
            while not self._stop.is_set() and time.monotonic() < self._deadline:
                method, path, body = self._make_request(self._next())
                started = time.monotonic()
                try:
                    response = client.request(method, path, json=body)
                except httpx.ConnectError as exc:
                    outcome = Outcome(
                        started, time.monotonic(), "refused", error=repr(exc), path=path
                    )
                    if self._stop_on_refused:
                        with self._lock:
                            self.outcomes.append(outcome)
                        return
                    time.sleep(0.01)  # nobody listening: do not spin
                except httpx.TimeoutException as exc:
                    outcome = Outcome(
                        started, time.monotonic(), "timeout", error=repr(exc), path=path
                    )
                except httpx.TransportError as exc:  # connected, then closed/reset: no response
                    outcome = Outcome(
                        started, time.monotonic(), "dropped", error=repr(exc), path=path
                    )
                else:
                    parsed: Any = None
                    if self._keep_bodies:
                        try:
                            parsed = response.json()
                        except ValueError:
                            parsed = response.text
                    outcome = Outcome(
                        started,
                        time.monotonic(),
                        "answered",
                        status=response.status_code,
                        body=parsed,
                        path=path,
                    )
                with self._lock:
                    self.outcomes.append(outcome)
