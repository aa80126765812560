"""Reading the prediction log: the one interface both backends implement for the offline tools.

A reader yields the log in pages (lists of blocks), so a tool's memory does not grow with the
log: the **labelled blocks** (every label given since T, with the block it belongs to: what the
label export needs) and the **scored blocks** (every block created since T with its labels and,
when a challenger scored it, the challenger's outputs: what the live comparison needs). It only
reads, while the service keeps writing. Open one with :meth:`prediction_log.location.LogLocation.reader`;
every failure of the store (missing, not a log, unreachable, a read failing) is a
:class:`LogReadError` of one line.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from types import TracebackType
from typing import Protocol, Self, TypeVar

import numpy as np

from models.promotion.live_builder import CallTiming, ScoredBlock

_T = TypeVar("_T")

LABEL_PAGE = 10_000
"""Labels read from the log at a time (SQLite), or block keys scanned at a time (Redis), by
:meth:`PredictionLogReader.labelled_blocks`."""
LABEL_BLOCK_GROUP = 100
"""Labelled blocks fetched at a time: a 1000-row block is ~80 KB, so a group stays under ~10 MB."""
SCORED_BLOCK_PAGE = 200
"""SQLite blocks read per query by :meth:`PredictionLogReader.scored_blocks` (their outputs
only, never their features): 9.6 MB for 1000-row requests, the biggest transient."""
SCAN_PAGE = 1000
"""Redis keys scanned at a time by the scored-block reader; their ``created_at`` is read in one
round trip, so that only the window's hashes are read whole."""
SCORED_BLOCK_GROUP = 100
"""Redis block hashes read per round trip by the scored-block reader (a 1000-row block is
~90 KB)."""


class LogReadError(Exception):
    """The log cannot be read (no log, not a log, an outdated file, unreachable, a read
    failed): one line, naming the log."""


@dataclass(frozen=True)
class Label:
    """One joined label: the prediction's id, the actual minutes and when it arrived (None for
    Redis labels joined by a version that did not record the time)."""

    prediction_id: str
    row: int
    actual: float
    labelled_at: float | None


@dataclass(frozen=True)
class StoredBlock:
    """One request's block as stored (``records.PredictionBlock``), what the export reads."""

    created_at: float
    model_version: str
    rows: int
    features: bytes
    outputs: bytes
    entity_ids: bytes | None


@dataclass(frozen=True)
class LabelledBlock:
    """A block and its labels read so far; ``block`` is None when it no longer exists."""

    block: StoredBlock | None
    labels: list[Label]


class PredictionLogReader(Protocol):
    """What the offline tools read from a prediction log, whatever its backend."""

    def labelled_blocks(self, since: float | None = None) -> Iterator[list[LabelledBlock]]:
        """The labels given at or after ``since`` (epoch seconds; None: all), with their
        blocks, a page at a time. A label whose block is gone has ``block`` None."""
        ...

    def scored_blocks(self, since: float | None = None) -> Iterator[list[ScoredBlock]]:
        """The blocks created at or after ``since`` (None: all) with their labels (NaN where
        none arrived) and the challenger's outputs when it scored them, a page at a time."""
        ...

    def close(self) -> None:
        """Release the connection."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None: ...


class ClosingReader:
    """``with reader: ...`` closes it (the base of both backends' readers)."""

    def close(self) -> None:
        """Release the connection."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def batched(items: Iterable[_T], size: int) -> Iterator[list[_T]]:
    """``items`` in lists of ``size`` (the last one shorter); ``itertools.batched`` is 3.12+."""
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def scored_block(
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
