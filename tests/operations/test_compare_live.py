"""``make compare`` on real logs: SQLite and Redis logs written by the service's own classes are
read back into the live champion-vs-challenger comparison; the window, unshadowed blocks, other
pairs, old files, paging while the service writes, and the command line's output and exits."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import redis

from models.promotion.live_comparison import LiveComparison
from operations.compare_live import CompareError, compare_live, main
from prediction_log import (
    ModelCall,
    RedisPredictionLog,
    SQLitePredictionLog,
)
from prediction_log.location import LogLocation
from prediction_log.redis_reader import RedisLogReader
from prediction_log.settings import PredictionLogSettings
from prediction_log.sqlite_reader import SQLiteLogReader
from tests.harness.local_server import ROOT, free_port
from tests.harness.shadow_logs import LoggedRequest, intervals, write_requests

CHAMPION, CHALLENGER, OTHER = "delivery_eta:champ", "delivery_eta:chal", "delivery_eta:other"
RETENTION_S = 3 * 24 * 3600  # keeps the 30-hour-old block the window must leave out
NOW = time.time()


class Scenario:
    """Requests in the log and what the comparison of the last 24 h must say about them.

    - 40 requests of 3 rows scored by both the champion and the challenger, rows 0 and 1
      labelled: 80 pairs, the challenger exactly 5 minutes worse on each (over-predicting more);
    - 10 single-row requests the challenger did not score, labelled;
    - 5 single-row requests another challenger scored, labelled (another pair);
    - 1 request of 2 rows shadowed 30 hours ago, labelled, with errors of 100 minutes: only in
      an all-time comparison.
    """

    def __init__(self, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.requests: list[LoggedRequest] = []
        self.over: list[float] = []  # the champion's error on each labelled shadowed row
        for i in range(40):
            truth = rng.uniform(10, 60, 3)
            over = rng.uniform(0, 4, 3)
            labels = truth.copy()
            labels[2] = np.nan
            self.over += over[:2].tolist()
            self.requests.append(
                LoggedRequest(
                    CHAMPION,
                    intervals(truth + over, 5.0),  # covers every label (over < 4)
                    labels,
                    CHALLENGER,
                    intervals(truth + over + 5.0, 3.0),  # covers none (5-8 minutes over)
                    created_at=NOW - 60 - i,
                    call=ModelCall(0.5 + i / 100, 6),
                    shadow_call=ModelCall(2.0 + i / 10, 200),
                )
            )
        for i in range(10):
            truth = rng.uniform(10, 60, 1)
            self.requests.append(
                LoggedRequest(CHAMPION, intervals(truth + 1, 3.0), truth, created_at=NOW - i / 10)
            )
        for i in range(5):
            truth = rng.uniform(10, 60, 1)
            self.requests.append(
                LoggedRequest(
                    CHAMPION,
                    intervals(truth, 3.0),
                    truth,
                    OTHER,
                    intervals(truth, 3.0),
                    created_at=NOW - 10 - i,
                )
            )
        truth = np.array([30.0, 40.0])
        self.requests.append(
            LoggedRequest(
                CHAMPION,
                intervals(truth + 100, 3.0),
                truth,
                CHALLENGER,
                intervals(truth + 100, 3.0),
                created_at=NOW - 30 * 3600,
            )
        )

    def check(self, result: LiveComparison) -> None:
        """``result`` is the comparison of the last 24 h of this scenario's log."""
        assert [(p.champion.model_version, p.challenger.model_version) for p in result.pairs] == [
            (CHAMPION, CHALLENGER),
            (CHAMPION, OTHER),
        ]
        pair = result.pair(CHAMPION, CHALLENGER)
        assert pair is not None
        # Every block of the champion in the window, shadowed or not; the old one is not.
        assert (pair.rows_predicted, pair.labelled_rows) == (120 + 10 + 5, 80 + 10 + 5)
        assert (pair.rows_shadowed, pair.labelled_shadowed_rows) == (120, 80)
        assert pair.champion.mae == pytest.approx(np.mean(self.over))
        assert pair.mae_difference.mean == pytest.approx(5.0)
        assert pair.mae_difference.ci_high - pair.mae_difference.ci_low < 1e-6  # type: ignore[operator]
        assert (pair.champion.coverage, pair.challenger.coverage) == (1.0, 0.0)
        assert pair.coverage_difference.mean == -1.0
        assert pair.champion.latency.blocks == pair.challenger.latency.blocks == 40
        ms = 0.5 + np.arange(40) / 100
        assert pair.champion.latency.ms_p50 == pytest.approx(np.percentile(ms, 50))
        assert pair.champion.latency.us_per_row_p95 == pytest.approx(
            np.percentile(ms * 1000 / 6, 95)
        )
        assert pair.challenger.latency.ms_p95 == pytest.approx(
            np.percentile(2.0 + np.arange(40) / 10, 95)
        )
        assert pair.prediction_psi is not None and pair.psi_rows == 120
        other = result.pair(CHAMPION, OTHER)
        assert other is not None
        assert (other.rows_shadowed, other.labelled_shadowed_rows) == (5, 5)
        assert other.mae_difference.mean == 0.0 and other.mae_difference.ci_low is None
        assert other.challenger.latency.blocks == 5
        assert result.champions[CHAMPION].rows_predicted == 135
        assert result.pair(CHALLENGER, CHAMPION) is None


async def _sqlite_log(path: Path, requests: list[LoggedRequest]) -> LogLocation:
    await write_requests(SQLitePredictionLog(path, retention_s=RETENTION_S), requests)
    return LogLocation("sqlite", path=path)


async def _redis_log(url: str, prefix: str, requests: list[LoggedRequest]) -> LogLocation:
    log = RedisPredictionLog(url, retention_s=RETENTION_S, key_prefix=prefix)
    await write_requests(log, requests)
    return LogLocation("redis", redis_url=url, redis_prefix=prefix)


async def test_a_sqlite_log_gives_the_pairs_of_the_window(tmp_path: Path) -> None:
    scenario = Scenario()
    location = await _sqlite_log(tmp_path / "p.sqlite3", scenario.requests)

    scenario.check(compare_live(location, 24, now=NOW))

    everything = compare_live(location, None, now=NOW)
    pair = everything.pair(CHAMPION, CHALLENGER)
    assert pair is not None and pair.labelled_shadowed_rows == 82
    assert pair.champion.mae == pytest.approx((np.sum(scenario.over) + 200) / 82)
    assert everything.window == "all blocks the log holds"
    # A window of 5 s holds only the newest single-row requests: no challenger data.
    recent = compare_live(location, 5 / 3600, now=NOW)
    assert recent.pairs == [] and recent.champions[CHAMPION].rows_predicted == 10
    assert "DELIVERY_ETA_SHADOW_MODEL_TAG" in recent.table()


@pytest.mark.redis
async def test_a_redis_log_gives_the_pairs_of_the_window(
    redis_server,  # type: ignore[no-untyped-def]
) -> None:
    scenario = Scenario()
    location = await _redis_log(redis_server.url, "shadow:block:", scenario.requests)
    client = redis.Redis.from_url(redis_server.url)
    client.set("shadow:block:not-a-hash", "x")  # under the prefix, but no block
    client.hset("shadow:block:no-fields", "a", "b")
    client.hset("elsewhere:block", mapping={"created_at": NOW, "model_version": "x", "rows": 1})
    client.close()

    scenario.check(compare_live(location, 24, now=NOW))

    everything = compare_live(location, None, now=NOW)
    assert everything.pair(CHAMPION, CHALLENGER).labelled_shadowed_rows == 82  # type: ignore[union-attr]
    # Small scans and groups: every block read once.
    with RedisLogReader(redis_server.url, "shadow:block:") as reader:
        pages = list(reader.scored_blocks(NOW - 24 * 3600, page=7, group=3))
    assert max(len(page) for page in pages) <= 3
    assert sum(len(block.outputs) for page in pages for block in page) == 135


async def test_sqlite_pages_read_every_block_once_across_equal_timestamps(tmp_path: Path) -> None:
    path = tmp_path / "p.sqlite3"
    # 25 requests of 1..25 rows, logged in the same instant (a batch flush), 4 more a second on.
    requests = [
        LoggedRequest(CHAMPION, intervals(np.full(rows, 30.0), 3), np.full(rows, np.nan))
        for rows in range(1, 26)
    ]
    for request in requests[:21]:
        request.created_at = NOW
    for request in requests[21:]:
        request.created_at = NOW + 1
    await _sqlite_log(path, requests)
    with SQLiteLogReader(path) as reader:
        pages = list(reader.scored_blocks(NOW, page=4))
    assert max(len(page) for page in pages) == 4
    assert sorted(len(b.outputs) for page in pages for b in page) == list(range(1, 26))


async def test_a_file_of_an_older_release_is_refused_in_one_line_and_left_as_it_was(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as db:  # the tables as the release before entity ids made them
        db.execute(
            "CREATE TABLE prediction_blocks (block_key TEXT PRIMARY KEY, created_at REAL NOT NULL,"
            " model_version TEXT NOT NULL, rows INTEGER NOT NULL, features BLOB NOT NULL,"
            " outputs BLOB NOT NULL)"
        )
    db.close()
    with pytest.raises(CompareError, match=r"older release .*entity_ids.*docs/prediction-log\.md"):
        compare_live(LogLocation("sqlite", path=path), 24, now=NOW)
    with sqlite3.connect(path) as db:
        columns = [row[1] for row in db.execute("PRAGMA table_info(prediction_blocks)")]
    db.close()
    assert columns == ["block_key", "created_at", "model_version", "rows", "features", "outputs"]


async def test_the_comparison_reads_while_the_service_keeps_writing(tmp_path: Path) -> None:
    path = tmp_path / "p.sqlite3"
    scenario = Scenario()
    log = SQLitePredictionLog(path, retention_s=RETENTION_S, timeout_s=0.5)
    try:
        blocks = [request.block() for request in scenario.requests]
        for block, _ in blocks[:20]:
            log.append(block)
        await log.flush()
        first = compare_live(LogLocation("sqlite", path=path), 24)
        assert first.pair(CHAMPION, CHALLENGER).rows_shadowed == 60  # type: ignore[union-attr]
        # The reader holds no lock: the service's next writes and labels go through at once.
        for block, _ in blocks[20:]:
            log.append(block)
        started = time.monotonic()
        await log.flush()
        block, ids = blocks[0]
        assert (await log.attach_feedback(ids[0], 30.0)).status == "joined"
        assert time.monotonic() - started < 0.5
        assert log.status()["state"] == "ready"
        second = compare_live(LogLocation("sqlite", path=path), 24)
        pair = second.pair(CHAMPION, CHALLENGER)
        assert pair is not None and pair.rows_shadowed == 120 and pair.labelled_shadowed_rows == 1
    finally:
        await log.close()


def test_settings_name_the_log_to_read(tmp_path: Path) -> None:
    settings = PredictionLogSettings(
        backend="redis", redis_url="redis://:pw@10.0.0.1:6380/2", redis_prefix="p:"
    )
    location = LogLocation.of(settings, "redis://127.0.0.1:6379/0")  # its own Redis first
    assert location == LogLocation("redis", settings.path, location.redis_url, "p:")
    assert location.redis_url is not None and location.redis_url.startswith("redis://:pw@")
    assert "pw" not in location.describe() and "p:*" in location.describe()
    shared = LogLocation.of(PredictionLogSettings(backend="redis"), "redis://127.0.0.1:6379/0")
    assert shared.redis_url == "redis://127.0.0.1:6379/0"  # the feature store's, by default
    sqlite = LogLocation.of(PredictionLogSettings(path=tmp_path / "x.sqlite3"))
    assert (sqlite.backend, sqlite.path) == ("sqlite", tmp_path / "x.sqlite3")
    with pytest.raises(CompareError, match="does not exist"):
        compare_live(sqlite)
    with pytest.raises(CompareError, match="positive"):
        compare_live(sqlite, 0)


# -- the command line -------------------------------------------------------------------------


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "operations.compare_live", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**(env or {}), "PATH": "/usr/bin:/bin"},
    )


def _main(capsys: pytest.CaptureFixture[str], *args: str) -> subprocess.CompletedProcess[str]:
    """``main`` in this process (faster than :func:`_cli`), as a finished command."""
    code = main(list(args))
    said = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, said.out, said.err)


def _refused(result: subprocess.CompletedProcess[str], says: str) -> None:
    """Exit 2 with one line saying why, after at most the line naming the log it read."""
    assert result.returncode == 2, result
    assert result.stdout == ""
    *read, refusal = result.stderr.splitlines()
    assert len(read) <= 1 and all(line.startswith("compare: reading the ") for line in read)
    assert "Traceback" not in result.stderr, result.stderr
    assert refusal.startswith("compare: ") and says in refusal, result.stderr


async def test_the_command_line_prints_the_table_and_json_for_the_services_log(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state" / "p.sqlite3"
    await _sqlite_log(path, Scenario().requests)
    env = {"DELIVERY_ETA_PREDICTION_LOG_PATH": str(path)}  # the service's setting, no --path

    table = _cli(env=env)

    assert table.returncode == 0 and table.stderr == f"compare: reading the sqlite log {path}\n"
    print("\n" + table.stdout)
    text = table.stdout
    assert f"last 24 h (sqlite log {path})" in text
    assert f"{CHAMPION} (champion) vs {CHALLENGER} (challenger)" in text
    assert f"{CHAMPION} (champion) vs {OTHER} (challenger)" in text
    mae = next(line for line in text.splitlines() if "MAE (min)" in line)
    assert "+5.000" in mae and "[+5.000, +5.000]" in mae and "challenger worse" in mae
    assert "too few pairs to tell (< 30)" in text  # the other pair: 5 pairs
    assert "normal approximation" in text

    as_json = _cli("--json", "--hours", "48", env=env)
    assert as_json.returncode == 0, as_json
    document = json.loads(as_json.stdout)
    assert document["window_hours"] == 48
    pair = document["pairs"][0]
    assert (pair["champion"]["model_version"], pair["challenger"]["model_version"]) == (
        CHAMPION,
        CHALLENGER,
    )
    assert pair["labelled_shadowed_rows"] == 82  # 48 h: the 30-hour-old request too


@pytest.mark.redis
async def test_the_command_line_reads_a_redis_log(
    redis_server,  # type: ignore[no-untyped-def]
) -> None:
    await _redis_log(redis_server.url, "delivery_eta:block:", Scenario().requests)
    env = {
        "DELIVERY_ETA_PREDICTION_LOG_BACKEND": "redis",
        "DELIVERY_ETA_PREDICTION_LOG_REDIS_URL": redis_server.url,
    }
    result = _cli("--json", env=env)
    assert result.returncode == 0, result
    assert result.stderr.startswith("compare: reading the redis log redis://127.0.0.1:")
    document = json.loads(result.stdout)
    assert document["pairs"][0]["labelled_shadowed_rows"] == 80
    assert document["source"].startswith("redis log redis://127.0.0.1:")


async def test_no_challenger_data_is_not_an_error_and_says_how_to_get_some(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "p.sqlite3"
    await _sqlite_log(
        path, [LoggedRequest(CHAMPION, intervals([25.0, 35.0], 3), np.array([np.nan, 30.0]))]
    )
    result = _main(capsys, "--path", str(path))
    assert result.returncode == 0 and result.stderr == f"compare: reading the sqlite log {path}\n"
    assert "no challenger data in the blocks created in the last 24 h" in result.stdout
    assert f"{CHAMPION}: 2 rows" in result.stdout
    assert "DELIVERY_ETA_SHADOW_MODEL_TAG" in result.stdout
    as_json = json.loads(_main(capsys, "--path", str(path), "--json").stdout)
    assert as_json["pairs"] == [] and "DELIVERY_ETA_SHADOW_MODEL_TAG" in as_json["message"]


def test_the_command_line_refuses_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing.sqlite3"
    _refused(_cli("--path", str(missing)), "does not exist")
    assert not missing.exists()  # never created
    (tmp_path / "junk").write_text("not sqlite " * 100)
    _refused(_main(capsys, "--path", str(tmp_path / "junk")), "not a database")
    other = tmp_path / "other.sqlite3"
    sqlite3.connect(other).execute("CREATE TABLE other (a)").connection.close()
    _refused(_main(capsys, "--path", str(other)), "is not a prediction log")
    unreachable = f"redis://:secret@127.0.0.1:{free_port()}/0"
    refused = _cli("--backend", "redis", "--redis-url", unreachable)
    _refused(refused, "ConnectionError")
    assert "secret" not in refused.stderr
    _refused(_main(capsys, "--backend", "redis"), "DELIVERY_ETA_REDIS_URL must be set")
    log = tmp_path / "p.sqlite3"
    asyncio.run(SQLitePredictionLog(log, retention_s=3600).close())
    _refused(_main(capsys, "--path", str(log), "--hours", "0"), "--hours")
    _refused(_main(capsys, "--path", str(log), "--hours", "nan"), "--hours")
