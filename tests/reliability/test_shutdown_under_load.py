"""Graceful shutdown: SIGTERM to a real ``bentoml serve`` in the middle of concurrent load.

Two client populations run at once, 8 threads each, single predictions mixed with 200-order
batches: one opens a new connection per request (``close``), one reuses keep-alive connections
(``keepalive``). After ~150 answers the server gets SIGTERM, either

* ``group``: to its whole process group (a terminal's stop, ``make serve`` killed), or
* ``main``: to the ``bentoml serve`` process only (what Docker/Kubernetes do to PID 1), with
  1 worker and with 2 (the production pods' count: both share one listening socket),

and every request's outcome is classified by when it started and ended relative to the signal
(``before`` / ``inflight`` / ``after``) and by what the client saw (answered / refused / dropped /
timeout, see ``loadgen``). Requirements (issue 6): every request whose connection was accepted
gets a response; new connections may be refused once the server closes its door; the server (all
its processes) exits within ``GRACE_S``. The server drains for ``DRAIN_S`` first
(serving/server/drain.py): ``/readyz`` turns 503 while requests are still answered, then the listening
socket stops taking new connections, the queued ones are served, and the process exits.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.harness.local_server import local_server
from tests.reliability.conftest import KNOWN_ORDER, server_env
from tests.reliability.loadgen import Load, Outcome, Request

pytestmark = pytest.mark.server

GRACE_S = 30.0
DRAIN_S = 2.0
THREADS_PER_POPULATION = 8
ANSWERS_BEFORE_SIGTERM = 150


def _request(i: int) -> Request:
    if i % 4 == 0:
        return ("POST", "/v1/predict/batch", {"orders": [KNOWN_ORDER] * 200})
    return ("POST", "/v1/predict", {**KNOWN_ORDER, "distance_km": 1 + i % 40})


@dataclass
class ShutdownRun:
    target: str
    sigterm_at: float
    exit_code: int | None
    exit_after_s: float | None
    readiness: list[tuple[float, int | None]]
    group_gone: bool
    port_closed: bool
    outcomes: dict[str, list[Outcome]]
    log: str

    def phase(self, outcome: Outcome) -> str:
        if outcome.ended < self.sigterm_at:
            return "before"
        return "inflight" if outcome.started < self.sigterm_at else "after"

    def table(self) -> dict[str, dict[str, int]]:
        """population -> "phase kind[status]" -> count."""
        return {
            population: dict(
                sorted(
                    Counter(
                        f"{self.phase(o)} {o.kind}{'' if o.status is None else f' {o.status}'}"
                        for o in outcomes
                    ).items()
                )
            )
            for population, outcomes in self.outcomes.items()
        }

    def first_not_ready_s(self) -> float | None:
        """Seconds from SIGTERM to the first /readyz answer that was not 200."""
        return next((t for t, status in self.readiness if status not in (200, None)), None)

    def all(self) -> list[Outcome]:
        return [o for outcomes in self.outcomes.values() for o in outcomes]


class ReadinessProbe(threading.Thread):
    """Polls /readyz every 50 ms from SIGTERM on, as a load balancer's health check would."""

    def __init__(self, url: str, since: float) -> None:
        super().__init__(name="readyz-probe", daemon=True)
        self.url, self.since = url, since
        self.statuses: list[tuple[float, int | None]] = []
        self._stop_event = threading.Event()

    def run(self) -> None:
        with httpx.Client(timeout=2) as client:
            while not self._stop_event.is_set():
                try:
                    status: int | None = client.get(f"{self.url}/readyz").status_code
                except httpx.TransportError:
                    status = None  # the door is closed: no answer at all
                self.statuses.append((time.monotonic() - self.since, status))
                if status is None:
                    return
                self._stop_event.wait(0.05)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=5)


def _port_closed(url: str) -> bool:
    host, port = url.rsplit("/", 1)[-1].split(":")
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, int(port))) != 0


def _group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


# (signal target, workers): Kubernetes signals PID 1 of a pod running 2 workers (a 2-CPU limit).
@pytest.fixture(
    scope="module",
    params=[("group", 1), ("main", 1), ("main", 2)],
    ids=["group-1worker", "main-1worker", "main-2workers"],
)
def shutdown_run(
    request: pytest.FixtureRequest,
    registered: Any,
    tmp_path_factory: pytest.TempPathFactory,
    record_figure: Any,
) -> ShutdownRun:
    target, workers = request.param
    workdir: Path = tmp_path_factory.mktemp(f"shutdown-{target}-{workers}")
    env = server_env(
        registered,
        workdir,
        DELIVERY_ETA_SHUTDOWN_DRAIN_S=str(DRAIN_S),
        DELIVERY_ETA_WORKERS=str(workers),
    )
    with local_server(workdir / "server.log", env=env) as server:
        loads = {
            name: Load(
                server.url,
                _request,
                threads=THREADS_PER_POPULATION,
                keepalive=name == "keepalive",
                stop_on_refused=True,  # a refused client goes elsewhere: sent = real attempts
            )
            for name in ("close", "keepalive")
        }
        for load in loads.values():
            load.start()
        try:
            for load in loads.values():
                load.wait_for(ANSWERS_BEFORE_SIGTERM // 2)
            sigterm_at = time.monotonic()
            readiness = ReadinessProbe(server.url, sigterm_at)
            readiness.start()
            if target == "group":
                os.killpg(server.proc.pid, signal.SIGTERM)
            else:
                os.kill(server.proc.pid, signal.SIGTERM)
            try:
                exit_code: int | None = server.proc.wait(timeout=GRACE_S)
                exit_after: float | None = time.monotonic() - sigterm_at
            except subprocess.TimeoutExpired:
                exit_code, exit_after = None, None
            # Keep knocking for a moment after the exit: those must be refused, not hang.
            time.sleep(0.5)
        finally:
            for load in loads.values():
                load.stop()
            readiness.stop()
        if exit_code is None:  # let local_server's teardown kill it; report the failure below
            os.killpg(server.proc.pid, signal.SIGKILL)
        run = ShutdownRun(
            target=target,
            sigterm_at=sigterm_at,
            exit_code=exit_code,
            exit_after_s=exit_after,
            readiness=readiness.statuses,
            group_gone=_group_gone(server.proc.pid),
            port_closed=_port_closed(server.url),
            outcomes={name: load.outcomes for name, load in loads.items()},
            log=server.log(),
        )
    sent = len(run.all())
    answered = sum(o.answered for o in run.all())
    connected = [o for o in run.all() if o.kind != "refused"]
    record_figure(
        f"shutdown SIGTERM->{target} ({workers} worker{'s' if workers > 1 else ''})",
        {
            "sent": sent,
            "answered": answered,
            "connected_not_answered": len(connected) - sum(o.answered for o in connected),
            "refused": sent - len(connected),
            "exit_code": run.exit_code,
            "exit_after_s": None if exit_after is None else round(exit_after, 2),
            "readyz_503_after_s": run.first_not_ready_s(),
            "by_population": run.table(),
            "unanswered_detail": dict(
                Counter(
                    f"{population} {run.phase(o)} {o.error.split('(')[0]}"
                    for population, outcomes in run.outcomes.items()
                    for o in outcomes
                    if o.kind in ("dropped", "timeout")
                )
            ),
            "unanswered_ended_s_after_sigterm": sorted(
                round(o.ended - run.sigterm_at, 2)
                for o in run.all()
                if o.kind in ("dropped", "timeout")
            ),
        },
    )
    return run


def test_shutdown_is_clean(shutdown_run: ShutdownRun) -> None:
    """Exit 0 within the grace period after the drain, every process gone, nothing hangs, no 5xx,
    requests answered up to and through the signal, refusals only after it."""
    run = shutdown_run
    assert run.exit_code == 0, f"exit code {run.exit_code}:\n{run.log[-3000:]}"
    assert run.exit_after_s is not None and DRAIN_S <= run.exit_after_s <= GRACE_S
    assert run.group_gone, "worker processes outlived the server"
    assert run.port_closed
    outcomes = run.all()
    assert not [o for o in outcomes if o.kind == "timeout"], "a request hung through shutdown"
    assert all(o.status == 200 for o in outcomes if o.answered), Counter(o.status for o in outcomes)
    assert not [o for o in outcomes if o.kind == "refused" and run.phase(o) != "after"]
    assert not [o for o in outcomes if run.phase(o) == "before" and not o.answered]
    assert any(o.answered for o in outcomes if run.phase(o) == "inflight")
    assert "Traceback" not in run.log


def test_not_ready_while_draining_and_still_answering(shutdown_run: ShutdownRun) -> None:
    """/readyz turns 503 right after SIGTERM while predictions keep being answered for the drain."""
    run = shutdown_run
    not_ready_at = run.first_not_ready_s()
    assert not_ready_at is not None and not_ready_at < 1.0, run.readiness[:10]
    answered_late = [o for o in run.all() if o.answered and o.ended - run.sigterm_at > DRAIN_S / 2]
    assert answered_late, "nothing was answered during the drain"


def test_every_accepted_request_is_answered(shutdown_run: ShutdownRun) -> None:
    run = shutdown_run
    unanswered = [o for o in run.all() if o.kind in ("dropped", "timeout")]
    detail = Counter(f"{run.phase(o)} {o.kind} {o.error.split('(')[0]}" for o in unanswered)
    assert not unanswered, f"accepted but never answered: {dict(detail)}"
