"""The SQLite log's stored format, in one place: its tables, their columns, how a file is opened
for writing (created if needed) or for reading (never created), and the transaction both use.

Two tables: ``prediction_blocks``, one row per request (:data:`BLOCK_COLUMNS`; the arrays as
little-endian float64 bytes, ``records.PredictionBlock``), and ``feedback``, one row per label
(:data:`LABEL_COLUMNS`). A file written by a release that predates a column of
:data:`BLOCK_COLUMNS` is refused with :class:`OutdatedLogFile` rather than migrated
(docs/prediction-log.md, "Migrating an old log").
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

BLOCKS = "prediction_blocks"
"""The table of blocks (one per request)."""
LABELS = "feedback"
"""The table of labels (one per labelled prediction)."""

BLOCK_COLUMNS: tuple[tuple[str, str], ...] = (
    ("block_key", "TEXT PRIMARY KEY"),
    ("created_at", "REAL NOT NULL"),
    ("model_version", "TEXT NOT NULL"),
    ("rows", "INTEGER NOT NULL"),
    ("features", "BLOB NOT NULL"),
    ("outputs", "BLOB NOT NULL"),
    # The rows' entity ids (records.encode_entity_ids): what the export needs to retrain.
    ("entity_ids", "BLOB"),
    # The champion's model call (records.ModelCall).
    ("inference_ms", "REAL"),
    ("inference_rows", "INTEGER"),
    # The challenger's outputs and call, when one scored the block (serving.pipeline.shadow).
    ("shadow_version", "TEXT"),
    ("shadow_outputs", "BLOB"),
    ("shadow_inference_ms", "REAL"),
    ("shadow_inference_rows", "INTEGER"),
    # Where each entity feature came from (int8 codes, models.features.FEATURE_SOURCES).
    ("feature_sources", "BLOB"),
)
"""``prediction_blocks``' columns, in the order they are written."""

LABEL_COLUMNS: tuple[tuple[str, str], ...] = (
    ("prediction_id", "TEXT PRIMARY KEY"),
    ("actual", "REAL NOT NULL"),
    ("feedback_at", "REAL NOT NULL"),
)
"""``feedback``'s columns, in the order they are written."""

BLOCK_COLUMN_NAMES = tuple(name for name, _ in BLOCK_COLUMNS)
CALL_COLUMNS = (
    "inference_ms",
    "inference_rows",
    "shadow_version",
    "shadow_outputs",
    "shadow_inference_ms",
    "shadow_inference_rows",
)
"""The columns of the model calls and the challenger's answer, in the order
``reading.scored_block`` takes them (what the live comparison reads beside the outputs)."""

INSERT_BLOCK = (
    f"INSERT OR IGNORE INTO {BLOCKS} ({', '.join(BLOCK_COLUMN_NAMES)})"
    f" VALUES ({', '.join('?' * len(BLOCK_COLUMNS))})"
)
"""Writes one block, given as the values of :data:`BLOCK_COLUMNS` in order."""

# The WAL is truncated back to this after a checkpoint (it otherwise keeps its largest size).
WAL_SIZE_LIMIT_BYTES = 4 * 1024 * 1024


class OutdatedLogFile(sqlite3.DatabaseError):
    """The file was written by an older release: its ``prediction_blocks`` lacks columns."""


def _create_table(name: str, columns: tuple[tuple[str, str], ...]) -> str:
    return f"CREATE TABLE IF NOT EXISTS {name} ({', '.join(' '.join(c) for c in columns)})"


def tables(db: sqlite3.Connection) -> set[str]:
    """The tables the file holds."""
    return {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def check_columns(db: sqlite3.Connection, path: Path) -> None:
    """:class:`OutdatedLogFile` naming what is missing if ``prediction_blocks`` lacks one of
    :data:`BLOCK_COLUMNS` (a file of an older release)."""
    present = {name for (name,) in db.execute(f"SELECT name FROM pragma_table_info('{BLOCKS}')")}
    missing = [name for name in BLOCK_COLUMN_NAMES if name not in present]
    if missing:
        raise OutdatedLogFile(
            f"prediction log {path} was written by an older release (no column "
            f"{', '.join(missing)}): export its labels with that release, or move it aside "
            "(docs/prediction-log.md, 'Migrating an old log')"
        )


def connect(path: Path, timeout_s: float) -> sqlite3.Connection:
    """Open (creating if needed) the log's file with its schema, for writing; waits
    ``timeout_s`` at most for another connection's lock. :class:`OutdatedLogFile` if the file
    has an older schema."""
    db = sqlite3.connect(path, timeout=timeout_s, isolation_level=None, check_same_thread=True)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT_BYTES}")
        # Deleted rows are overwritten with zeros (whatever the build's default): a block past
        # its retention leaves nothing in the file. Size-cap eviction alone opts out
        # (sqlite_log.SQLitePredictionLog._evict_oldest).
        db.execute("PRAGMA secure_delete=ON")
        db.execute(_create_table(BLOCKS, BLOCK_COLUMNS))
        check_columns(db, path)
        db.execute(f"CREATE INDEX IF NOT EXISTS {BLOCKS}_created ON {BLOCKS}(created_at)")
        db.execute(_create_table(LABELS, LABEL_COLUMNS))
    except BaseException:
        db.close()
        raise
    return db


def connect_existing(path: Path, timeout_s: float) -> sqlite3.Connection:
    """Open an existing log's file for reading only (never created, never changed); raises
    :class:`FileNotFoundError`, ``sqlite3.Error``, or :class:`OutdatedLogFile`, or
    :class:`NotALogFile` for a SQLite file that is not a prediction log.

    Opened read-write all the same, as the service opens it: a read-only connection to a WAL
    file nobody has open creates its ``-wal`` and ``-shm`` files and cannot remove them, and
    made by another user (root) they would keep the service from opening its own log.
    """
    if not path.is_file():
        raise FileNotFoundError(f"prediction log {path} does not exist")
    db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=rw", uri=True, timeout=timeout_s)
    try:
        if BLOCKS not in tables(db):
            raise NotALogFile(f"{path} is not a prediction log (no {BLOCKS} table)")
        check_columns(db, path)
    except BaseException:
        db.close()
        raise
    return db


class NotALogFile(sqlite3.DatabaseError):
    """A SQLite file without the log's tables."""


class Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``, rolled back if the block raises (an autocommit
    connection would otherwise commit every statement of an executemany on its own)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        try:
            if kind is None:
                self._db.execute("COMMIT")  # may fail too (a full disk shows here)
        finally:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
