"""The prediction log's cost stays bounded on a bad day, with a real server (1 worker).

One server for the module, with a small in-memory queue (5,000 rows) and a small SQLite size
cap (4 MiB); as root, its log lives on a 24 MiB tmpfs so that one test can fill the disk.
In file order:

* the SQLite file locked by another connection (``BEGIN EXCLUSIVE``): predictions still 200,
  ``/v1/feedback`` 503 + ``Retry-After``, ``/health`` says the log is failing; once the lock
  is gone every record made meanwhile is written and joins;
* a flood of 1000-row batches while the file is locked: the queue stays under its cap, the
  overflow is counted (metric) and logged once, not once per request;
* the disk full (a filler file on the tmpfs): predictions still 200, ``/health`` and the
  store-up gauge say so; freed space -> the queued records are written;
* a flood far bigger than the size cap: the database file stops growing.
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tests.harness.local_server import LocalServer, local_server
from tests.reliability.conftest import KNOWN_ORDER, server_env, wait_until

pytestmark = pytest.mark.server

QUEUE_ROWS = 5000
MAX_MIB = 4
BATCH = {"orders": [{**KNOWN_ORDER, "distance_km": 1 + i % 40} for i in range(1000)]}
RECORDS = "delivery_eta_prediction_log_records_total"


def _metric(url: str, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    total = 0.0
    for line in httpx.get(f"{url}/metrics", timeout=10).text.splitlines():
        match = re.match(rf"{re.escape(name)}(?:\{{(.*)\}})? (\S+)$", line)
        if match and all(f'{k}="{v}"' in (match.group(1) or "") for k, v in labels.items()):
            total += float(match.group(2))
    return total


@contextlib.contextmanager
def _tmpfs(directory: Path, size: str) -> Iterator[bool]:
    """``directory`` as a tmpfs of ``size`` (root only); yields whether it was mounted."""
    directory.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        yield False
        return
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(directory)], check=True
    )
    try:
        yield True
    finally:
        # Lazy: detached now even if a straggling process still holds a file there.
        subprocess.run(["umount", "--lazy", str(directory)], check=True)


@pytest.fixture(scope="module")
def limited(registered: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The server, its log path, and whether that path is on a small tmpfs."""
    workdir = tmp_path_factory.mktemp("predlog-limits")
    with _tmpfs(workdir / "state", "24m") as on_tmpfs:
        path = workdir / "state" / "predictions.sqlite3"
        env = server_env(
            registered,
            workdir,
            DELIVERY_ETA_WORKERS="1",
            DELIVERY_ETA_PREDICTION_LOG_PATH=str(path),
            DELIVERY_ETA_PREDICTION_LOG_QUEUE_ROWS=str(QUEUE_ROWS),
            DELIVERY_ETA_PREDICTION_LOG_MAX_MIB=str(MAX_MIB),
            DELIVERY_ETA_PREDICTION_LOG_TIMEOUT_MS="300",
        )
        with local_server(workdir / "server.log", env=env, ready_timeout_s=180) as server:
            yield {"server": server, "path": path, "on_tmpfs": on_tmpfs}


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Another connection holding the SQLite write lock (as a stuck migration or backup would)."""
    db = sqlite3.connect(path, timeout=5, isolation_level=None)
    db.execute("BEGIN EXCLUSIVE")
    try:
        yield
    finally:
        db.execute("ROLLBACK")
        db.close()


def _worker_rss_mib(server: LocalServer) -> float:
    children = psutil.Process(server.proc.pid).children(recursive=True)
    return max(c.memory_info().rss for c in children) / 2**20


def _log_state(client: httpx.Client) -> Any:
    return client.get("/health").json()["prediction_log"].get("state")


def _join(client: httpx.Client, prediction_id: str) -> int:
    body = {"prediction_id": prediction_id, "actual_delivery_time_min": 30.0}
    return client.post("/v1/feedback", json=body).status_code


def test_a_locked_store_delays_records_but_loses_none(
    limited: dict[str, Any], record_figure: Any
) -> None:
    server: LocalServer = limited["server"]
    with httpx.Client(base_url=server.url, timeout=30) as client:
        assert client.post("/v1/predict", json=KNOWN_ORDER).status_code == 200
        time.sleep(0.5)  # the file exists, with its tables
        with _locked(limited["path"]):
            made = [client.post("/v1/predict", json=KNOWN_ORDER) for _ in range(20)]
            time.sleep(1.0)  # several flushes fail meanwhile
            started = time.monotonic()
            during = client.post(
                "/v1/feedback",
                json={
                    "prediction_id": made[0].json()["prediction_id"],
                    "actual_delivery_time_min": 30.0,
                },
            )
            feedback_s = time.monotonic() - started
            state_during = _log_state(client)
        wait_until(lambda: _log_state(client) == "ready", timeout_s=10)
        joined = [_join(client, r.json()["prediction_id"]) for r in made]
    record_figure(
        "prediction log, locked store",
        {
            "predictions": [r.status_code for r in made].count(200),
            "feedback_while_locked": during.status_code,
            "feedback_while_locked_s": round(feedback_s, 2),
            "retry_after": during.headers.get("Retry-After"),
            "health_state_while_locked": state_during,
            "joined_after_unlock": joined.count(200),
        },
    )
    assert [r.status_code for r in made] == [200] * 20
    assert during.status_code == 503 and during.headers.get("Retry-After"), during.text
    assert feedback_s < 10
    assert state_during == "failing"
    assert joined == [200] * 20, joined
    assert "Traceback" not in server.log()


def test_a_flood_against_a_stuck_writer_stays_under_the_queue_cap(
    limited: dict[str, Any], record_figure: Any
) -> None:
    server: LocalServer = limited["server"]
    dropped_before = _metric(server.url, RECORDS, outcome="dropped_queue_full")
    rss_before = _worker_rss_mib(server)
    peak = 0.0
    with httpx.Client(base_url=server.url, timeout=30) as client, _locked(limited["path"]):
        for _ in range(30):
            assert client.post("/v1/predict/batch", json=BATCH).status_code == 200
            peak = max(peak, _metric(server.url, "delivery_eta_prediction_log_queue_rows"))
        rss_grown = _worker_rss_mib(server) - rss_before
    dropped = _metric(server.url, RECORDS, outcome="dropped_queue_full") - dropped_before
    overflow_lines = server.log().count("prediction log queue full")
    record_figure(
        "prediction log, 30k rows against a locked store",
        {
            "queue_cap_rows": QUEUE_ROWS,
            "queue_rows_peak": peak,
            "dropped_queue_full": dropped,
            "overflow_log_lines": overflow_lines,
            "worker_rss_growth_mib": round(rss_grown, 1),
        },
    )
    assert 0 < peak <= QUEUE_ROWS
    assert dropped >= 30_000 - QUEUE_ROWS
    assert 1 <= overflow_lines <= 3  # rate-limited: not one line per dropped request


def test_a_full_disk_shows_in_health_and_metrics(
    limited: dict[str, Any], record_figure: Any
) -> None:
    if not limited["on_tmpfs"]:
        pytest.skip("filling a disk needs a tmpfs mount (root)")
    server: LocalServer = limited["server"]
    filler = limited["path"].parent / "filler"
    with httpx.Client(base_url=server.url, timeout=30) as client:
        wait_until(lambda: _log_state(client) == "ready", timeout_s=10)
        with filler.open("wb") as handle, contextlib.suppress(OSError):
            while True:
                handle.write(b"\0" * 1_048_576)
                handle.flush()
        try:
            made = [client.post("/v1/predict/batch", json=BATCH) for _ in range(3)]
            full = wait_until(lambda: _log_state(client) == "failing", timeout_s=10)
            health = client.get("/health").json()
            up = _metric(server.url, "delivery_eta_prediction_log_up")
        finally:
            filler.unlink()
        recovered = wait_until(lambda: _log_state(client) == "ready", timeout_s=10)
        joined = _join(client, made[-1].json()["predictions"][-1]["prediction_id"])
    record_figure(
        "prediction log, full disk",
        {
            "predictions": [r.status_code for r in made],
            "health": health,
            "up_gauge": up,
            "joined_after_space_freed": joined,
        },
    )
    assert [r.status_code for r in made] == [200] * 3
    assert full and health["status"] == "degraded", health
    assert "full" in health["prediction_log"]["error"], health
    assert up == 0
    assert recovered and joined == 200


def test_the_size_cap_holds_under_a_flood(limited: dict[str, Any], record_figure: Any) -> None:
    server: LocalServer = limited["server"]
    path: Path = limited["path"]
    sizes = []
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for _round in range(3):
            for _ in range(60):  # 60,000 rows, ~4 MB of features and outputs each round
                assert client.post("/v1/predict/batch", json=BATCH).status_code == 200
            time.sleep(0.5)
            # The file grows when the WAL is checkpointed (every 4 MiB of it, the size of the
            # cap): without a checkpoint here its size lags the writes by up to a whole cap.
            with contextlib.closing(sqlite3.connect(path, timeout=5)) as db:
                db.execute("PRAGMA wal_checkpoint(PASSIVE)")
            sizes.append(path.stat().st_size)
        evicted = _metric(
            server.url, "delivery_eta_prediction_log_evicted_rows_total", reason="size_cap"
        )
        wal = path.with_name(path.name + "-wal")
        wal_size = wal.stat().st_size if wal.exists() else 0
    record_figure(
        "prediction log, 180k rows against a 4 MiB cap",
        {"db_bytes_after_each_60k_rows": sizes, "wal_bytes": wal_size, "evicted_rows": evicted},
    )
    assert sizes[-1] <= MAX_MIB * 1.1 * 2**20, sizes
    # 60k rows (~4.7 MB) reach the cap; after that freed pages are reused: no growth, or only
    # up to the cap itself (the second sample may be a block or two below it: 78 KB each).
    assert sizes[2] <= max(sizes[1] * 1.02, MAX_MIB * 2**20), sizes
    assert wal_size <= 8 * 2**20
    assert evicted > 0
