"""What the prediction log stores: prediction ids, one request's block, a joined label.

The log stores one **block** per request, not one row per prediction: the request's features
and outputs as float64 arrays, under a block key (random, then the creation time's 10-s slot)
that is also the first 27 hex digits of every prediction id of the request (the last 5 are the
row). Per-prediction rows cost ~100 us
each in SQLite (a random-key index insert plus JSON), which capped 1000-row batches at ~10k
rows/s; a block costs one insert per request. Labels are few and go to a table of their own.

A block also keeps its rows' entity ids (one column per entity field), which the features do not
hold (they hold the entities' averages): retraining on exported labels needs them (``export``).
With a challenger configured (``serving.pipeline.shadow``) it also keeps the challenger's outputs
for the same rows, so one label scores both models; and for each model the call that scored it
(duration, rows), so inference cost can be compared from the log.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, overload

import numpy as np

from models.features import DEFAULT_SOURCE_CODE

FeedbackStatus = Literal["joined", "duplicate", "conflict", "unknown"]

_ROW_DIGITS = 5
MAX_ROWS_PER_BLOCK = 16**_ROW_DIGITS
"""Most predictions one block (one request) can hold: the row is the id's last 5 hex digits."""
ID_SLOT_S = 10
"""Seconds of one time slot in a block key (its last 7 hex digits)."""
ID_SLOTS = 16**7


def new_block_key(count: int, now: float | None = None) -> str:
    """A new block key for ``count`` predictions (the ids' first 31 characters), shaped as the
    start of a version-4 UUID.

    Its first 18 hex digits and 2 bits hold 74 random bits (``os.urandom``), so ids stay
    unguessable; only the request's own client, which receives all of them, learns the ids of a
    block. Its last 7 digits are the creation time's :data:`ID_SLOT_S` slot (``now``, default
    the clock), modulo 16**7 (85 years): the Redis log groups the blocks of one slot into a few
    hashes that expire together (``prediction_log.redis_format``).
    """
    if count > MAX_ROWS_PER_BLOCK:
        raise ValueError(f"at most {MAX_ROWS_PER_BLOCK} predictions per request, got {count}")
    digits = os.urandom(10).hex()
    slot = int((time.time() if now is None else now) // ID_SLOT_S) % ID_SLOTS
    # Version nibble 4 and the RFC 4122 variant, as uuid4 sets them.
    variant = "89ab"[int(digits[15], 16) & 3]
    return f"{digits[:8]}-{digits[8:12]}-4{digits[12:15]}-{variant}{digits[16:19]}-{slot:07x}"


def new_prediction_ids(count: int, now: float | None = None) -> tuple[str, list[str]]:
    """A new block key (:func:`new_block_key`) and ``count`` prediction ids under it."""
    key = new_block_key(count, now)
    return key, PredictionIds(key, count).tolist()


_HEX_DIGITS = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_ROW_SHIFTS = np.arange(4 * (_ROW_DIGITS - 1), -1, -4)


@dataclass(frozen=True)
class PredictionIds(Sequence[str]):
    """The prediction ids of a block's ``rows`` rows: its key, then each row as 5 hex digits.

    Made in one numpy pass when asked for, not one string formatting per row: a 10,000-row
    request's ids cost ~2 ms as f-strings, and a binary answer needs only their bytes
    (:meth:`ascii_table`).
    """

    block_key: str
    rows: int

    def ascii_table(self) -> np.ndarray:
        """``(rows, 36)`` uint8: every id's ASCII bytes, one id per row."""
        key = self.block_key.encode("ascii")
        table = np.empty((self.rows, len(key) + _ROW_DIGITS), dtype=np.uint8)
        table[:, : len(key)] = np.frombuffer(key, dtype=np.uint8)
        numbers = np.arange(self.rows, dtype=np.int64)
        table[:, len(key) :] = _HEX_DIGITS[(numbers[:, None] >> _ROW_SHIFTS) & 0xF]
        return table

    def tolist(self) -> list[str]:
        """Every id, as ``str``."""
        if self.rows <= 16:  # a few rows: string formatting beats numpy's per-call overhead
            return [f"{self.block_key}{row:0{_ROW_DIGITS}x}" for row in range(self.rows)]
        width = len(self.block_key) + _ROW_DIGITS
        ids: list[str] = self.ascii_table().view(f"S{width}").ravel().astype(f"U{width}").tolist()
        return ids

    def __len__(self) -> int:
        return self.rows

    def __iter__(self) -> Iterator[str]:
        return iter(self.tolist())

    @overload
    def __getitem__(self, index: int) -> str: ...

    @overload
    def __getitem__(self, index: slice) -> list[str]: ...

    def __getitem__(self, index: int | slice) -> str | list[str]:
        if isinstance(index, slice):
            return self.tolist()[index]
        row = range(self.rows)[index]  # IndexError as a list's, negative indexes too
        return f"{self.block_key}{row:0{_ROW_DIGITS}x}"


RECENT_SLOTS = 1
"""Slots before the current one in which a block key counts as just made (up to 20 s old)."""


def made_moments_ago(block_key: str, now: float | None = None) -> bool:
    """Whether the key's time slot (its last 7 digits) is the clock's current or previous one:
    a prediction this recent may still wait in another worker's or replica's write queue."""
    try:
        slot = int(block_key[-7:], 16)
    except ValueError:
        return False
    current = int((time.time() if now is None else now) // ID_SLOT_S) % ID_SLOTS
    return (current - slot) % ID_SLOTS <= RECENT_SLOTS


def split_prediction_id(prediction_id: str) -> tuple[str, int] | None:
    """(block key, row) of an id made by :func:`new_prediction_ids` (or :class:`PredictionIds`);
    None if it is not one."""
    key, row = prediction_id[:-_ROW_DIGITS], prediction_id[-_ROW_DIGITS:]
    if len(prediction_id) != 36 or len(key) != 31:
        return None
    try:
        return key, int(row, 16)
    except ValueError:
        return None


def encode_entity_ids(columns: Sequence[Sequence[str]]) -> bytes:
    """A block's entity ids as stored: every row's id of the contract's first entity field,
    then every row's id of the second, and so on, ``"\\n"``-joined, UTF-8 (ids never hold a
    newline: ``models.contract.ENTITY_ID_PATTERN``). Built on the request path: one join per
    column, ~0.15 us for one row and ~10 us for 1000 rows (docs/prediction-log.md)."""
    return "\n".join("\n".join(column) for column in columns).encode()


def decode_entity_ids(stored: bytes, rows: int, fields: int) -> list[list[str]] | None:
    """Each entity field's ids of a block's ``rows`` rows; None if ``stored`` does not hold
    exactly ``fields`` ids per row."""
    if rows == 0 or fields == 0:
        return [[] for _ in range(fields)]
    ids = stored.decode("utf-8", errors="replace").split("\n")
    if len(ids) != fields * rows:
        return None
    return [ids[i * rows : (i + 1) * rows] for i in range(fields)]


@dataclass(frozen=True)
class ShadowPrediction:
    """The challenger's answer to one logged prediction (never returned to the client)."""

    model_version: str
    predicted: float
    lower: float
    upper: float


@dataclass(frozen=True)
class PredictionRecord:
    """What was predicted, for whom, by which model (and by the challenger, if it scored it)."""

    prediction_id: str
    created_at: float
    model_version: str
    features: list[float]
    predicted: float
    lower: float
    upper: float
    shadow: ShadowPrediction | None = None
    entity_known: bool | None = None
    """Whether every entity feature came from the request or the online store (the entity
    cohort, ``models.cohorts``); None in blocks written before the sources were kept."""


@dataclass(frozen=True)
class ModelCall:
    """One model call that scored a block's rows: its duration (the model alone, in its thread)
    and how many rows it scored (the block's and those of every request merged with it)."""

    ms: float
    rows: int


@dataclass(frozen=True)
class ShadowScores:
    """The challenger's outputs for every row of a block, and the call that made them."""

    model_version: str
    outputs: np.ndarray
    """(n, 3): point, lower, upper (clamped like the champion's)."""
    call: ModelCall

    def encoded(self) -> bytes:
        """The outputs as little-endian float64 bytes, row-major (the stored form)."""
        return np.ascontiguousarray(self.outputs, dtype="<f8").tobytes()


@dataclass(frozen=True)
class PredictionBlock:
    """The predictions of one request, column by column (what the request path hands over)."""

    block_key: str
    created_at: float
    model_version: str
    features: np.ndarray
    """(n, features) model input, in the contract's ``feature_names`` order."""
    outputs: np.ndarray
    """(n, 3): point, lower, upper."""
    entity_ids: bytes | None = None
    """The rows' entity ids, one column per entity field (:func:`encode_entity_ids`); None in
    blocks written before they were kept (their rows cannot be exported for retraining)."""
    feature_sources: np.ndarray | None = None
    """(n, entity features) int8 source codes (``models.features.FEATURE_SOURCES``): where each
    of the contract's entity features came from. None in blocks written before they were
    kept."""
    call: ModelCall | None = None
    """The champion's model call for these rows; None in blocks written before it was kept."""
    shadow: ShadowScores | None = None
    """The challenger's outputs; None when no challenger scored this block (none configured,
    not selected by the shadow fraction, dropped under load, or the challenger failed)."""

    def __len__(self) -> int:
        return int(self.features.shape[0])

    def with_shadow(self, shadow: ShadowScores) -> PredictionBlock:
        """This block with the challenger's outputs (built directly: ``dataclasses.replace``
        costs several times more, once per request on the event loop)."""
        return PredictionBlock(
            self.block_key,
            self.created_at,
            self.model_version,
            self.features,
            self.outputs,
            self.entity_ids,
            self.feature_sources,
            self.call,
            shadow,
        )

    def encoded(self) -> tuple[bytes, bytes]:
        """Features and outputs as little-endian float64 bytes, row-major (the stored form)."""
        return (
            np.ascontiguousarray(self.features, dtype="<f8").tobytes(),
            np.ascontiguousarray(self.outputs, dtype="<f8").tobytes(),
        )


def stored_record(
    prediction_id: str,
    row: int,
    created_at: float,
    model_version: str,
    rows: int,
    features: bytes,
    outputs: bytes,
    shadow_version: str | None = None,
    shadow_outputs: bytes | None = None,
    feature_sources: bytes | None = None,
) -> PredictionRecord | None:
    """Row ``row`` of a stored block as a record; None if the block has no such row. The
    challenger's answer is attached when the block holds one for every row."""
    if not 0 <= row < rows:
        return None
    feature_row = np.frombuffer(features, dtype="<f8").reshape(rows, -1)[row].tolist()
    point, lower, upper = np.frombuffer(outputs, dtype="<f8").reshape(rows, 3)[row].tolist()
    shadow = None
    if shadow_version is not None and shadow_outputs is not None:
        scores = np.frombuffer(shadow_outputs, dtype="<f8")
        if scores.size == rows * 3:
            s_point, s_lower, s_upper = scores.reshape(rows, 3)[row].tolist()
            shadow = ShadowPrediction(shadow_version, s_point, s_lower, s_upper)
    entity_known = None
    if feature_sources is not None and len(feature_sources) % rows == 0:
        codes = np.frombuffer(feature_sources, dtype=np.int8).reshape(rows, -1)[row]
        entity_known = bool((codes != DEFAULT_SOURCE_CODE).all())
    return PredictionRecord(
        prediction_id,
        created_at,
        model_version,
        feature_row,
        point,
        lower,
        upper,
        shadow,
        entity_known,
    )


@dataclass(frozen=True)
class FeedbackResult:
    """Outcome of joining one label; ``record`` is None when the id is unknown."""

    status: FeedbackStatus
    record: PredictionRecord | None
    actual: float | None


def joined(record: PredictionRecord, actual: float, stored: float | None) -> FeedbackResult:
    """The outcome once the label store answered: ``stored`` is None if ours was the first."""
    if stored is None:
        return FeedbackResult("joined", record, actual)
    return FeedbackResult("duplicate" if stored == actual else "conflict", record, stored)


class PredictionLogUnavailable(Exception):
    """The log's store failed (locked, full, I/O error, unreachable): retry later."""


class PredictionNotRecorded(LookupError):
    """A prediction that was made but whose record was dropped (its store failed or the queue
    was full): its label can never join, so neither "retry later" nor "unknown" is true."""


class PredictionLog(Protocol):
    """Where predictions wait for their labels."""

    backend: str

    def append(self, block: PredictionBlock) -> None:
        """Queue one request's predictions for writing (non-blocking)."""
        ...

    async def flush(self) -> None:
        """Write everything queued so far."""
        ...

    async def attach_feedback(self, prediction_id: str, actual: float) -> FeedbackResult:
        """Join ``actual`` to its prediction, at most once; raises
        :class:`PredictionLogUnavailable` while the store is failing."""
        ...

    def status(self) -> dict[str, Any]:
        """The log's part of GET /health: backend, state and queue (plus backend details)."""
        ...

    async def close(self) -> None:
        """Flush and release resources."""
        ...
