"""A worker restarted alone (SIGTERM or SIGKILL, 1 and 2 workers) never leaves the server deaf.

BentoML (circus) respawns a worker that exits; every worker and the arbiter share one listening
socket. Issue 12, finding 4: the drain's door (a socket filter dropping SYNs, serving/server/drain.py)
used to stay on that shared socket after the worker that attached it was gone, so the respawned
worker never got a new connection and ``/livez`` timed out forever while every process looked
healthy. Requirement: after any single worker is killed, ``/livez`` and ``/v1/predict`` answer
again on new connections within ``RECOVERY_S`` plus the replacement's own start-up; with 2
workers, the other worker keeps taking new connections while the killed one drains.

One server per worker count, reused by its kill cases, which run in order: SIGTERM, then SIGKILL.
Each case kills the oldest worker and waits for its replacement to listen, so with 2 workers the
SIGKILL case leaves the worker respawned by the SIGTERM case serving alone: that respawn has to
take connections, not just exist. The figures (seconds from the kill) print at the end of the run.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from framework_internals import bentoml_worker_processes
from serving.server.drain import PARENT_POLL_S
from serving.server.worker_markers import markers_folder
from tests.harness.local_server import LocalServer, local_server
from tests.reliability.conftest import KNOWN_ORDER, server_env

pytestmark = pytest.mark.server

RECOVERY_S = 30.0
"""The issue's bound on answering again after a worker is killed, *not counting* the seconds the
respawned worker itself needs to import the service and load the model: that start-up alone took
8-50 s on the busy 2-core test machine, and is the same with or without this fix."""
GIVE_UP_S = 240.0
DRAIN_S = 1.5
PROBE_TIMEOUT_S = 2.0


def _workers(server: LocalServer) -> list[psutil.Process]:
    """The server's worker processes, oldest first (a killed worker is a zombie until circus
    reaps it: the door skips it)."""
    return bentoml_worker_processes(psutil.Process(server.proc.pid))


def _listening_since(server: LocalServer, worker: psutil.Process) -> float | None:
    """When (epoch s) ``worker`` started listening: its marker (serving/server/worker_markers.py), if any."""
    folder = markers_folder(server.proc.pid)
    try:
        return None if folder is None else (folder / f"serving.{worker.pid}").stat().st_mtime
    except FileNotFoundError:
        return None


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
    """Opens a new connection to ``/livez`` every 50 ms; records (seconds since ``since``, error
    or None) for each."""

    def __init__(self, url: str, since: float) -> None:
        super().__init__(name="new-connection-probe", daemon=True)
        self.url, self.since = url, since
        self.outcomes: list[tuple[float, str | None]] = []
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            try:
                with httpx.Client(timeout=PROBE_TIMEOUT_S) as client:
                    status = client.get(f"{self.url}/livez").status_code
                error = None if status == 200 else f"status {status}"
            except httpx.TransportError as exc:
                error = type(exc).__name__
            self.outcomes.append((round(time.monotonic() - self.since, 2), error))
            self._stop_event.wait(0.05)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=PROBE_TIMEOUT_S + 5)


@dataclass
class Recovery:
    killed_pid: int
    worker_reaped_s: float | None = None
    respawn_started_s: float | None = None
    """Kill -> the replacement worker process exists."""
    respawn_listening_s: float | None = None
    """Kill -> the replacement listens (its service imported, its model loaded)."""
    recovered_s: float | None = None
    """Kill -> ``/livez`` and ``/v1/predict`` answer on new connections, 3 times in a row."""
    probes_while_going: list[tuple[float, str | None]] = field(default_factory=list)

    def without_respawn_start_up(self) -> float | None:
        """Seconds to recover, minus those the replacement spent starting up."""
        if self.recovered_s is None or self.respawn_listening_s is None:
            return None
        assert self.respawn_started_s is not None
        return self.recovered_s - (self.respawn_listening_s - self.respawn_started_s)


def _kill_oldest_worker(server: LocalServer, workers: int, sig: int) -> Recovery:
    """Send ``sig`` to the oldest worker and time its replacement (see :class:`Recovery`)."""
    before = _workers(server)
    assert len(before) == workers, [p.cmdline() for p in before]
    victim = before[0]
    killed_at, killed_epoch = time.monotonic(), time.time()
    run = Recovery(victim.pid)
    probe = NewConnectionProbe(server.url, killed_at)
    probe.start()
    victim.send_signal(sig)
    try:
        victim.wait(timeout=GIVE_UP_S)  # it counts until circus reaps it (every 10 s)
        run.worker_reaped_s = time.monotonic() - killed_at
    except psutil.TimeoutExpired:
        return run
    finally:
        probe.stop()
        run.probes_while_going = probe.outcomes
    successes = 0
    while time.monotonic() - killed_at < GIVE_UP_S:
        replacement = next((p for p in _workers(server) if p not in before), None)
        listening = None if replacement is None else _listening_since(server, replacement)
        if listening is not None:
            assert replacement is not None
            run.respawn_started_s = replacement.create_time() - killed_epoch
            run.respawn_listening_s = listening - killed_epoch
            successes = successes + 1 if _answers(server.url) else 0
            if successes == 3:
                run.recovered_s = time.monotonic() - killed_at
                return run
        time.sleep(0.1)
    return run


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
    # A generous start-up bound: 2 workers loading the model on a busy 2-core machine took > 90 s.
    with local_server(workdir / "server.log", env=env, ready_timeout_s=GIVE_UP_S) as server:
        # Ready means one worker answers: wait for all (a SIGTERM to one still importing the
        # service kills it at once, which is not the case under test).
        deadline = time.monotonic() + GIVE_UP_S
        while not (
            len(found := _workers(server)) == workers
            and all(_listening_since(server, worker) for worker in found)
        ):
            assert time.monotonic() < deadline, "the workers never all listened"
            time.sleep(0.2)
        yield server, workers


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_server_answers_again_after_one_worker_is_killed(
    respawning_server: tuple[LocalServer, int], sig: signal.Signals, record_figure: Any
) -> None:
    server, workers = respawning_server
    run = _kill_oldest_worker(server, workers, sig)
    failed_probes = [(t, error) for t, error in run.probes_while_going if error]
    record_figure(
        f"worker respawn {sig.name} ({workers} worker{'s' if workers > 1 else ''})",
        {
            name: None if value is None else round(value, 2)
            for name, value in {
                "worker_reaped_s": run.worker_reaped_s,
                "respawn_started_s": run.respawn_started_s,
                "respawn_listening_s": run.respawn_listening_s,
                "recovered_s": run.recovered_s,
                "recovered_s_without_respawn_start_up": run.without_respawn_start_up(),
            }.items()
        }
        | {
            "new_connections_while_going": len(run.probes_while_going),
            "failed": failed_probes,
        },
    )
    assert run.worker_reaped_s is not None, f"worker {run.killed_pid} still alive"
    assert run.recovered_s is not None, (
        f"no answer within {GIVE_UP_S:.0f} s of the {sig.name} to worker {run.killed_pid}:\n"
        + server.log()[-3000:]
    )
    recovery = run.without_respawn_start_up()
    assert recovery is not None and recovery <= RECOVERY_S, run
    if workers > 1:
        # The other worker keeps taking new connections while this one drains and exits.
        assert run.probes_while_going and not failed_probes, failed_probes
    assert "Traceback" not in server.log()


def test_workers_exit_when_the_serving_process_dies(
    respawning_server: tuple[LocalServer, int],
) -> None:
    # Runs last for each server: it ends it. A worker whose arbiter was SIGKILLed used to run on,
    # re-parented, holding the port (found: orphans an hour old after a killed test run).
    server, workers = respawning_server
    found = _workers(server)
    assert len(found) == workers
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait()
    _, alive = psutil.wait_procs(found, timeout=DRAIN_S + PARENT_POLL_S + 30)
    assert not alive, [p.pid for p in alive]
