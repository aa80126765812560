"""A worker restarted alone (SIGTERM or SIGKILL, 1 and 2 workers) never leaves the server deaf.

BentoML (circus) respawns a worker that exits; every worker and the arbiter share one listening
socket. Issue 12, finding 4: the drain's door (a socket filter dropping SYNs, serving/shutdown.py)
used to stay on that shared socket after the worker that attached it was gone, so the respawned
worker never got a new connection and ``/livez`` timed out forever while every process looked
healthy. Requirement: after any single worker is killed, ``/livez`` and ``/v1/predict`` answer
again within ``RECOVERY_S``, on fresh connections; with 2 workers, the other worker keeps taking new
connections while the killed one drains.

One server per worker count, reused by its kill cases, which run in order: SIGTERM, then SIGKILL.
With 2 workers each case kills the oldest worker, so the SIGKILL case leaves the worker respawned
by the SIGTERM case serving alone: that respawn has to take connections, not just exist.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tests.harness.local_server import LocalServer, local_server
from tests.reliability.conftest import KNOWN_ORDER, server_env

pytestmark = pytest.mark.server

RECOVERY_S = 30.0
DRAIN_S = 1.5
PROBE_TIMEOUT_S = 2.0


def _workers(server: LocalServer) -> list[psutil.Process]:
    """The server's worker processes, oldest first."""
    workers = [
        p
        for p in psutil.Process(server.proc.pid).children(recursive=True)
        if "_bentoml_impl.worker.service" in " ".join(p.cmdline())
    ]
    return sorted(workers, key=lambda p: p.create_time())


def _answers(url: str) -> bool:
    """``/livez`` and ``/v1/predict`` both answer 200, each on a new connection."""
    try:
        with httpx.Client(timeout=PROBE_TIMEOUT_S) as client:
            if client.get(f"{url}/livez").status_code != 200:
                return False
        with httpx.Client(timeout=PROBE_TIMEOUT_S) as client:
            return client.post(f"{url}/v1/predict", json=KNOWN_ORDER).status_code == 200
    except httpx.TransportError:
        return False


class NewConnectionProbe(threading.Thread):
    """Opens a new connection to ``/livez`` every 50 ms and records each outcome."""

    def __init__(self, url: str) -> None:
        super().__init__(name="new-connection-probe", daemon=True)
        self.url = url
        self.outcomes: list[tuple[float, bool]] = []
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            try:
                with httpx.Client(timeout=PROBE_TIMEOUT_S) as client:
                    ok = client.get(f"{self.url}/livez").status_code == 200
            except httpx.TransportError:
                ok = False
            self.outcomes.append((time.monotonic(), ok))
            self._stop_event.wait(0.05)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=PROBE_TIMEOUT_S + 5)


@dataclass
class Recovery:
    killed_pid: int
    worker_gone_s: float | None
    recovered_s: float | None
    probes_while_draining: list[tuple[float, bool]]


def _kill_oldest_worker(server: LocalServer, workers: int, sig: int) -> Recovery:
    """Send ``sig`` to the oldest worker; time until it is replaced and the server answers again
    (``/livez`` and ``/v1/predict`` on new connections, 3 times in a row)."""
    before = _workers(server)
    assert len(before) == workers, [p.cmdline() for p in before]
    victim = before[0]
    probe = NewConnectionProbe(server.url)
    probe.start()
    killed_at = time.monotonic()
    victim.send_signal(sig)
    gone_s: float | None = None
    recovered_s: float | None = None
    try:
        with_probe_until = killed_at + RECOVERY_S
        try:
            victim.wait(timeout=RECOVERY_S)
            gone_s = time.monotonic() - killed_at
        except psutil.TimeoutExpired:
            pass
        probe.stop()
        successes = 0
        while time.monotonic() < with_probe_until and gone_s is not None:
            replaced = len(_workers(server)) == workers
            successes = successes + 1 if replaced and _answers(server.url) else 0
            if successes == 3:
                recovered_s = time.monotonic() - killed_at
                break
            time.sleep(0.1)
    finally:
        probe.stop()
    return Recovery(victim.pid, gone_s, recovered_s, probe.outcomes)


@pytest.fixture(scope="module", params=[1, 2], ids=["1worker", "2workers"])
def respawning_server(
    request: pytest.FixtureRequest, registered: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LocalServer, int]]:
    workers: int = request.param
    workdir: Path = tmp_path_factory.mktemp(f"respawn-{workers}")
    env = server_env(
        registered,
        workdir,
        DELIVERY_ETA_WORKERS=str(workers),
        DELIVERY_ETA_SHUTDOWN_DRAIN_S=str(DRAIN_S),
    )
    with local_server(workdir / "server.log", env=env) as server:
        yield server, workers


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_server_answers_again_after_one_worker_is_killed(
    respawning_server: tuple[LocalServer, int], sig: signal.Signals, record_figure: Any
) -> None:
    server, workers = respawning_server
    run = _kill_oldest_worker(server, workers, sig)
    record_figure(
        f"worker respawn {sig.name} ({workers} worker{'s' if workers > 1 else ''})",
        {
            "worker_gone_s": None if run.worker_gone_s is None else round(run.worker_gone_s, 2),
            "recovered_s": None if run.recovered_s is None else round(run.recovered_s, 2),
            "new_connections_refused_or_hung_while_going": sum(
                not ok for _, ok in run.probes_while_draining
            ),
            "new_connections_while_going": len(run.probes_while_draining),
        },
    )
    assert run.worker_gone_s is not None, f"worker {run.killed_pid} still alive"
    assert run.recovered_s is not None, (
        f"no answer within {RECOVERY_S:.0f} s of the {sig.name} to worker {run.killed_pid}:\n"
        + server.log()[-3000:]
    )
    if workers > 1:
        # The other worker keeps taking new connections while this one drains and exits.
        failed = [round(t, 2) for t, ok in run.probes_while_draining if not ok]
        assert run.probes_while_draining and not failed, failed
    assert "Traceback" not in server.log()
