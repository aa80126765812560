"""``make compare``: the champion and the challenger side by side on the live requests both scored.

    python -m serving.pipeline.prediction_log.compare [--hours 24] [--json]
        [--backend sqlite|redis] [--path DB] [--redis-url URL] [--redis-prefix PREFIX]

Reads the prediction log the service's settings name (``DELIVERY_ETA_PREDICTION_LOG_*``; the
options override them), both backends, and prints per (champion, challenger) pair found in the
blocks created in the last ``--hours``: rows predicted and shadowed, labelled rows, MAE and
interval coverage of both models over the same labelled rows with a 95 % confidence interval on
the paired difference, the PSI between their point predictions, and their inference times
(``models.live_comparison`` has the statistics and their method).

It only reads, while the service keeps writing, and streams: SQLite blocks are read
:data:`BLOCK_PAGE` at a time in ``created_at`` order (keyset pagination: each page is one
short read, so the service's checkpoints are never held back for the whole run), Redis keys are
scanned :data:`SCAN_PAGE` at a time and the hashes in the window read :data:`BLOCK_GROUP` at a
time; what is kept across pages is the running sums and fixed reservoirs of
``models.live_comparison`` (a few MB per pair), whatever the log's size. The biggest transient
is one page: :data:`BLOCK_PAGE` blocks' outputs, 9.6 MB for 1000-row requests.

Redis' SCAN may return a key twice when the keyspace shrinks during the scan (after a mass
expiry); such a block is then counted twice. Remembering every key seen would make the reader's
memory grow with the log, so the repeat is accepted: it is rare and weighs one block.
"""

from __future__ import annotations

import argparse
import json
import math
import sqlite3
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import redis

from models.promotion.live_builder import CallTiming, LiveComparisonBuilder, ScoredBlock
from models.promotion.live_comparison import LiveComparison
from serving.pipeline.prediction_log.export import (
    ExportError,
    batched,
    glob_escape,
    open_sqlite_log,
    service_log_settings,
)
from serving.pipeline.prediction_log.location import LogLocation, announce, redacted_url
from serving.pipeline.prediction_log.sqlite_log import block_columns
from serving.settings import ServiceSettings

BLOCK_PAGE = 200
"""SQLite blocks read per query (their outputs only, never their features)."""
SCAN_PAGE = 1000
"""Redis keys scanned at a time; their ``created_at`` is read in one round trip."""
BLOCK_GROUP = 100
"""Redis block hashes read per round trip (a 1000-row block is ~90 KB)."""

# Columns added to prediction_blocks after its first release: an older file, which this reader
# never migrates, has NULL there.
_CALL_COLUMNS = (
    "inference_ms",
    "inference_rows",
    "shadow_version",
    "shadow_outputs",
    "shadow_inference_ms",
    "shadow_inference_rows",
)


class CompareError(Exception):
    """The comparison cannot run (no log, not a log, unreachable, bad settings): one line."""


def compare_live(
    source: ServiceSettings | LogLocation, hours: float | None = 24.0, *, now: float | None = None
) -> LiveComparison:
    """The live champion-vs-challenger comparison of the blocks created in the last ``hours``
    (None: every block the log holds) of the log ``source`` names.

    ``source`` is the service's settings (the log it writes) or an explicit :class:`LogLocation`;
    ``now`` (epoch seconds) defaults to the clock. Read-only; :class:`CompareError` (one line) if
    the log does not exist, is not a prediction log, or its Redis is unreachable. A window
    without shadowed rows is not an error: the result has no pairs and says so
    (``LiveComparison.no_challenger_message``).
    """
    if hours is not None and not hours > 0:
        raise CompareError("the window must be a positive number of hours")
    location = source if isinstance(source, LogLocation) else LogLocation.of(source)
    since = None if hours is None else (time.time() if now is None else now) - hours * 3600
    builder = LiveComparisonBuilder()
    if location.backend == "sqlite":
        if location.path is None:
            raise CompareError("no SQLite log path given")
        try:
            db = open_sqlite_log(location.path)
        except ExportError as exc:
            raise CompareError(str(exc)) from exc
        try:
            for page in sqlite_scored_blocks(db, since):
                builder.add_blocks(page)
        except sqlite3.Error as exc:
            raise CompareError(
                f"reading prediction log {location.path} failed: {type(exc).__name__}: {exc}"
            ) from exc
        finally:
            db.close()
    else:
        if not location.redis_url:
            raise CompareError("no Redis URL given for the Redis log")
        client = redis.Redis.from_url(
            location.redis_url, socket_timeout=10, socket_connect_timeout=5
        )
        try:
            client.ping()
            for page in redis_scored_blocks(client, location.redis_prefix, since):
                builder.add_blocks(page)
        except redis.RedisError as exc:
            raise CompareError(
                f"prediction log redis {redacted_url(location.redis_url)} failed: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        finally:
            client.close()
    return builder.result(hours, location.describe())


# -- SQLite ---------------------------------------------------------------------------------


def sqlite_scored_blocks(
    db: sqlite3.Connection, since: float | None, *, page: int = BLOCK_PAGE
) -> Iterator[list[ScoredBlock]]:
    """The blocks created at or after ``since`` with their labels, ``page`` blocks per list, in
    ``created_at`` order. Each page is its own short query (keyset pagination on the
    ``created_at`` index), so blocks written meanwhile are read if they fall after the point
    reached, and blocks evicted meanwhile are simply not."""
    tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if "prediction_blocks" not in tables:
        return  # a file of the one-row-per-prediction era: no challenger ever wrote to it
    present = block_columns(db)
    optional = ", ".join(c if c in present else f"NULL AS {c}" for c in _CALL_COLUMNS)
    labels = "feedback" in tables
    after_time, after_rowid = (-math.inf if since is None else since), -1
    while True:
        # Starts at the last created_at reached, so the index range never re-walks earlier pages.
        found = db.execute(
            f"SELECT rowid, block_key, created_at, model_version, rows, outputs, {optional}"
            " FROM prediction_blocks WHERE created_at >= ? AND (created_at > ? OR rowid > ?)"
            " ORDER BY created_at, rowid LIMIT ?",
            (after_time, after_time, after_rowid, page),
        ).fetchall()
        if not found:
            return
        after_time, after_rowid = found[-1][2], found[-1][0]
        blocks = []
        for _, key, _, version, rows, outputs, *call_columns in found:
            actual = np.full(rows, np.nan)
            if labels:
                # A label's id is the block key and the row in 5 hex digits: one index range.
                for prediction_id, value in db.execute(
                    "SELECT prediction_id, actual FROM feedback WHERE prediction_id BETWEEN ? AND ?",
                    (key + "00000", key + "fffff"),
                ):
                    row = int(prediction_id[-5:], 16)
                    if row < rows:
                        actual[row] = value
            block = _scored(version, rows, outputs, actual, *call_columns)
            if block is not None:
                blocks.append(block)
        yield blocks


def _scored(
    version: str,
    rows: int,
    outputs: bytes,
    actual: np.ndarray,
    inference_ms: float | None,
    inference_rows: int | None,
    shadow_version: str | None,
    shadow_outputs: bytes | None,
    shadow_inference_ms: float | None,
    shadow_inference_rows: int | None,
) -> ScoredBlock | None:
    """A stored block as the comparison reads it; None if its outputs do not hold ``rows`` rows.
    A challenger's outputs of the wrong size leave the block unshadowed."""
    decoded = np.frombuffer(outputs, dtype="<f8")
    if rows < 1 or decoded.size != rows * 3:
        return None
    shadow = None
    if shadow_version is not None and shadow_outputs is not None:
        scores = np.frombuffer(shadow_outputs, dtype="<f8")
        if scores.size == rows * 3:
            shadow = scores.reshape(rows, 3)
    return ScoredBlock(
        model_version=version,
        outputs=decoded.reshape(rows, 3),
        actual=actual,
        call=_call(inference_ms, inference_rows),
        shadow_version=shadow_version if shadow is not None else None,
        shadow_outputs=shadow,
        shadow_call=_call(shadow_inference_ms, shadow_inference_rows)
        if shadow is not None
        else None,
    )


def _call(ms: float | None, rows: int | None) -> CallTiming | None:
    return None if ms is None or rows is None else CallTiming(float(ms), int(rows))


# -- Redis ----------------------------------------------------------------------------------


def redis_scored_blocks(
    client: redis.Redis,
    prefix: str,
    since: float | None,
    *,
    page: int = SCAN_PAGE,
    group: int = BLOCK_GROUP,
) -> Iterator[list[ScoredBlock]]:
    """The block hashes under ``prefix`` created at or after ``since``, with their labels
    (fields ``actual:<row>``): keys scanned ``page`` at a time, their ``created_at`` read in one
    round trip so that only the window's hashes are read whole, ``group`` per list yielded."""
    scanned = client.scan_iter(match=glob_escape(prefix) + "*", count=page)
    for keys in batched(scanned, page):
        if since is not None:
            with client.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.hget(key, "created_at")
                created = pipe.execute(raise_on_error=False)  # a key of another type: an error
            keys = [
                key
                for key, at in zip(keys, created, strict=True)
                if isinstance(at, bytes) and _float(at, -math.inf) >= since
            ]
        for keys_group in batched(keys, group):
            with client.pipeline(transaction=False) as pipe:
                for key in keys_group:
                    pipe.hgetall(key)
                hashes = pipe.execute(raise_on_error=False)
            blocks = [
                block
                for stored in hashes
                # Empty: expired since the scan.
                if isinstance(stored, dict) and stored
                for block in [_redis_block(stored, since)]
                if block is not None
            ]
            yield blocks


def _float(raw: bytes, default: float) -> float:
    try:
        return float(raw)
    except ValueError:
        return default


def _redis_block(stored: dict[bytes, bytes], since: float | None) -> ScoredBlock | None:
    """A block hash as the comparison reads it; None if it is not a block or is older than
    ``since`` (its created_at is read again: the hash may have been replaced since the scan)."""
    try:
        created_at = float(stored[b"created_at"])
        version = stored[b"model_version"].decode()
        rows = int(stored[b"rows"])
        outputs = stored[b"outputs"]
    except (KeyError, ValueError):
        return None
    if since is not None and created_at < since:
        return None
    actual = np.full(max(rows, 0), np.nan)
    for name, value in stored.items():
        if name.startswith(b"actual:"):
            try:
                row, label = int(name[len(b"actual:") :]), float(value)
            except ValueError:
                continue  # not a label the log wrote
            if 0 <= row < rows:
                actual[row] = label

    def number(name: bytes, kind: type[Any]) -> Any:
        raw = stored.get(name)
        try:
            return None if raw is None else kind(raw)
        except ValueError:
            return None

    shadow_version = stored.get(b"shadow_version")
    return _scored(
        version,
        rows,
        outputs,
        actual,
        number(b"inference_ms", float),
        number(b"inference_rows", int),
        None if shadow_version is None else shadow_version.decode(),
        stored.get(b"shadow_outputs"),
        number(b"shadow_inference_ms", float),
        number(b"shadow_inference_rows", int),
    )


# -- the command line -----------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Print the comparison (a table, or ``--json``); exit 0, also when the window holds no
    challenger data (it says so and how to get some). Exit 2, one line on stderr, if it cannot
    read the log."""
    parser = argparse.ArgumentParser(
        prog="python -m serving.pipeline.prediction_log.compare",
        description="Champion vs challenger on the live requests both scored (prediction log).",
    )
    parser.add_argument(
        "--hours", type=float, default=24.0, help="blocks created in the last HOURS (default 24)"
    )
    parser.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    parser.add_argument(
        "--backend", choices=["sqlite", "redis"], help="default: the service's setting"
    )
    parser.add_argument("--path", type=Path, help="SQLite log file; default: the service's")
    parser.add_argument("--redis-url", help="Redis of the log; default: the service's")
    parser.add_argument("--redis-prefix", help="key prefix of the Redis log's blocks")
    args = parser.parse_args(argv)
    try:
        if not args.hours > 0 or not math.isfinite(args.hours):
            raise CompareError("--hours must be a positive number of hours")
        try:
            settings = service_log_settings(
                backend=args.backend,
                path=args.path,
                redis_url=args.redis_url,
                redis_prefix=args.redis_prefix,
            )
        except ExportError as exc:
            raise CompareError(str(exc)) from exc
        announce(settings, "compare")
        result = compare_live(settings, args.hours)
    except CompareError as exc:
        print(f"compare: {exc}", file=sys.stderr, flush=True)
        return 2
    if args.json:
        print(json.dumps(result.to_dict()), flush=True)
    else:
        print(result.table(), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
