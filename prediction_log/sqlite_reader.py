"""Reading the SQLite log (:class:`prediction_log.reading.PredictionLogReader`): labels in
prediction-id order with their blocks, and blocks in ``created_at`` order with their labels.

Each page is its own short query (keyset pagination), so the service's checkpoints are never
held back for the whole run, and no page is read twice however long a run takes.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

import numpy as np

from models.promotion.live_builder import ScoredBlock
from prediction_log.reading import (
    LABEL_BLOCK_GROUP,
    LABEL_PAGE,
    SCORED_BLOCK_PAGE,
    ClosingReader,
    Label,
    LabelledBlock,
    LogReadError,
    StoredBlock,
    batched,
    scored_block,
)
from prediction_log.records import split_prediction_id
from prediction_log.sqlite_schema import (
    BLOCKS,
    CALL_COLUMNS,
    LABELS,
    NotALogFile,
    OutdatedLogFile,
    connect_existing,
)

_T = TypeVar("_T")


class SQLiteLogReader(ClosingReader):
    """One SQLite log file, only read from; :class:`LogReadError` if it does not exist, is not a
    prediction log, was written by an older release, or cannot be read."""

    def __init__(self, path: Path, timeout_s: float = 5.0) -> None:
        self._path = path
        try:
            self._db = connect_existing(path, timeout_s)
        except FileNotFoundError as exc:
            raise LogReadError(str(exc)) from exc
        except (NotALogFile, OutdatedLogFile) as exc:
            raise LogReadError(str(exc)) from exc
        except sqlite3.Error as exc:
            raise LogReadError(
                f"cannot open prediction log {path}: {type(exc).__name__}: {exc}"
            ) from exc

    def close(self) -> None:
        """Close the connection."""
        self._db.close()

    def _reading(self, pages: Iterator[_T]) -> Iterator[_T]:
        """``pages``, a store failure while reading them turned into :class:`LogReadError`."""
        try:
            yield from pages
        except sqlite3.Error as exc:
            raise LogReadError(
                f"reading prediction log {self._path} failed: {type(exc).__name__}: {exc}"
            ) from exc

    def labelled_blocks(
        self,
        since: float | None = None,
        *,
        page: int = LABEL_PAGE,
        group: int = LABEL_BLOCK_GROUP,
    ) -> Iterator[list[LabelledBlock]]:
        """The labels given at or after ``since`` with their blocks, ``page`` labels read at a
        time in prediction-id order, ``group`` blocks per list yielded."""
        return self._reading(self._labelled(since, page, group))

    def _labelled(
        self, since: float | None, page: int, group: int
    ) -> Iterator[list[LabelledBlock]]:
        cutoff = -math.inf if since is None else since
        after = ""
        while True:
            # Keyset pagination on the primary key: no page is read twice.
            labels = self._db.execute(
                f"SELECT prediction_id, actual, feedback_at FROM {LABELS}"
                " WHERE prediction_id > ? AND feedback_at >= ? ORDER BY prediction_id LIMIT ?",
                (after, cutoff, page),
            ).fetchall()
            if not labels:
                return
            after = labels[-1][0]
            by_block: dict[str, list[Label]] = {}
            for prediction_id, actual, feedback_at in labels:
                located = split_prediction_id(prediction_id)
                key, row = located if located is not None else ("", -1)
                by_block.setdefault(key, []).append(Label(prediction_id, row, actual, feedback_at))
            for keys in batched(by_block, group):
                found = {
                    key: StoredBlock(*stored)
                    for key, *stored in self._db.execute(
                        "SELECT block_key, created_at, model_version, rows, features, outputs,"
                        f" entity_ids FROM {BLOCKS}"
                        f" WHERE block_key IN ({', '.join('?' * len(keys))})",
                        keys,
                    )
                }
                yield [LabelledBlock(found.get(key), by_block[key]) for key in keys]

    def scored_blocks(
        self, since: float | None = None, *, page: int = SCORED_BLOCK_PAGE
    ) -> Iterator[list[ScoredBlock]]:
        """The blocks created at or after ``since`` with their labels, ``page`` blocks per list,
        in ``created_at`` order (keyset pagination on the ``created_at`` index), so blocks
        written meanwhile are read if they fall after the point reached, and blocks evicted
        meanwhile are simply not."""
        return self._reading(self._scored(since, page))

    def _scored(self, since: float | None, page: int) -> Iterator[list[ScoredBlock]]:
        after_time, after_rowid = (-math.inf if since is None else since), -1
        while True:
            # Starts at the last created_at reached: the index range never re-walks a page.
            found = self._db.execute(
                "SELECT rowid, block_key, created_at, model_version, rows, outputs,"
                f" {', '.join(CALL_COLUMNS)} FROM {BLOCKS}"
                " WHERE created_at >= ? AND (created_at > ? OR rowid > ?)"
                " ORDER BY created_at, rowid LIMIT ?",
                (after_time, after_time, after_rowid, page),
            ).fetchall()
            if not found:
                return
            after_time, after_rowid = found[-1][2], found[-1][0]
            blocks = []
            for _, key, _, version, rows, outputs, *call_columns in found:
                actual = np.full(rows, np.nan)
                # A label's id is the block key and the row in 5 hex digits: one index range.
                for prediction_id, value in self._db.execute(
                    f"SELECT prediction_id, actual FROM {LABELS} WHERE prediction_id BETWEEN ? AND ?",
                    (key + "00000", key + "fffff"),
                ):
                    row = int(prediction_id[-5:], 16)
                    if row < rows:
                        actual[row] = value
                block = scored_block(version, rows, outputs, actual, *call_columns)
                if block is not None:
                    blocks.append(block)
            yield blocks
