"""Reading the Redis log (:class:`prediction_log.reading.PredictionLogReader`): the block hashes
under the log's key prefix, scanned a page at a time, with the labels they hold.

A label lives in its block's hash (``redis_log.LABEL_FIELD``), so an expired block takes its
labels with it: Redis never reports a label whose block is missing. SCAN may return a key
twice when the keyspace shrinks during the scan (after a mass expiry): the labelled-block
reader remembers the labelled keys it returned (few), the scored-block reader accepts the rare
repeat (remembering every key would make its memory grow with the log).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import numpy as np
import redis

from models.promotion.live_builder import ScoredBlock
from prediction_log.reading import (
    LABEL_BLOCK_GROUP,
    LABEL_PAGE,
    SCAN_PAGE,
    SCORED_BLOCK_GROUP,
    ClosingReader,
    Label,
    LabelledBlock,
    LogReadError,
    StoredBlock,
    batched,
    scored_block,
)
from prediction_log.redis_log import LABEL_FIELD, LABELLED_AT_FIELD
from prediction_log.settings import redacted_url

_T = TypeVar("_T")
_LABEL = LABEL_FIELD.encode()
_LABELLED_AT = LABELLED_AT_FIELD.encode()


def glob_escape(text: str) -> str:
    """``text`` as a literal in a Redis MATCH pattern (its glob characters escaped)."""
    return "".join("\\" + c if c in "\\*?[]" else c for c in text)


class RedisLogReader(ClosingReader):
    """The block hashes under ``prefix`` in the Redis at ``url``, only read from;
    :class:`LogReadError` if Redis is unreachable or a read fails."""

    def __init__(self, url: str, prefix: str, *, client: redis.Redis | None = None) -> None:
        self._url, self._prefix = url, prefix
        self._client = client or redis.Redis.from_url(
            url, socket_timeout=10, socket_connect_timeout=5
        )
        self._calling(self._client.ping)

    def close(self) -> None:
        """Close the connection."""
        self._client.close()

    def _failed(self, exc: redis.RedisError) -> LogReadError:
        return LogReadError(
            f"prediction log redis {redacted_url(self._url)} failed: {type(exc).__name__}: {exc}"
        )

    def _calling(self, call: Callable[[], _T]) -> _T:
        try:
            return call()
        except redis.RedisError as exc:
            raise self._failed(exc) from exc

    def _reading(self, pages: Iterator[_T]) -> Iterator[_T]:
        try:
            yield from pages
        except redis.RedisError as exc:
            raise self._failed(exc) from exc

    def _scan(self, page: int) -> Iterator[list[bytes]]:
        keys = self._client.scan_iter(match=glob_escape(self._prefix) + "*", count=page)
        return batched(keys, page)

    def _hashes(self, keys: list[bytes], command: str, *args: str) -> list[Any]:
        """One ``command`` per key in one round trip; a key of another type gives an error
        object in its place, not an exception."""
        with self._client.pipeline(transaction=False) as pipe:
            for key in keys:
                getattr(pipe, command)(key, *args)
            return pipe.execute(raise_on_error=False)

    def labelled_blocks(
        self,
        since: float | None = None,
        *,
        page: int = LABEL_PAGE,
        group: int = LABEL_BLOCK_GROUP,
    ) -> Iterator[list[LabelledBlock]]:
        """The labelled blocks: keys scanned ``page`` at a time, their field names tell blocks
        with labels, and those are read ``group`` at a time. Labels from before their time was
        recorded count as given at their prediction's time for ``since``."""
        return self._reading(self._labelled(since, page, group))

    def _labelled(
        self, since: float | None, page: int, group: int
    ) -> Iterator[list[LabelledBlock]]:
        seen: set[bytes] = set()  # only labelled keys are kept
        cutoff = -math.inf if since is None else since
        for keys in self._scan(page):
            # Field names only (~70 B a block): which hashes hold labels, in one round trip.
            fields = self._hashes(keys, "hkeys")
            labelled = []
            for key, names in zip(keys, fields, strict=True):
                if (
                    isinstance(names, list)
                    and key not in seen
                    and any(name.startswith(_LABEL) for name in names)
                ):
                    seen.add(key)  # now, not after reading: SCAN may repeat a key in a page
                    labelled.append(key)
            for keys_group in batched(labelled, group):
                blocks = []
                for key, stored in zip(
                    keys_group, self._hashes(keys_group, "hgetall"), strict=True
                ):
                    # Empty: expired since the scan, and its labels with it.
                    if isinstance(stored, dict) and stored:
                        block_key = key[len(self._prefix) :].decode(errors="replace")
                        found = _labelled_block(block_key, stored, cutoff)
                        if found is not None:
                            blocks.append(found)
                yield blocks

    def scored_blocks(
        self,
        since: float | None = None,
        *,
        page: int = SCAN_PAGE,
        group: int = SCORED_BLOCK_GROUP,
    ) -> Iterator[list[ScoredBlock]]:
        """The block hashes created at or after ``since``, with their labels: keys scanned
        ``page`` at a time, their ``created_at`` read in one round trip so that only the
        window's hashes are read whole, ``group`` per list yielded."""
        return self._reading(self._scored(since, page, group))

    def _scored(self, since: float | None, page: int, group: int) -> Iterator[list[ScoredBlock]]:
        for keys in self._scan(page):
            if since is not None:
                created = self._hashes(keys, "hget", "created_at")
                keys = [
                    key
                    for key, at in zip(keys, created, strict=True)
                    if isinstance(at, bytes) and _number(at, float, -math.inf) >= since
                ]
            for keys_group in batched(keys, group):
                yield [
                    block
                    for stored in self._hashes(keys_group, "hgetall")
                    # Empty: expired since the scan.
                    if isinstance(stored, dict) and stored
                    for block in [_scored_block(stored, since)]
                    if block is not None
                ]


def _number(raw: bytes | None, kind: Callable[[bytes], _T], default: Any = None) -> Any:
    try:
        return default if raw is None else kind(raw)
    except ValueError:
        return default


def _stored_block(stored: dict[bytes, bytes]) -> StoredBlock | None:
    try:
        return StoredBlock(
            float(stored[b"created_at"]),
            stored[b"model_version"].decode(),
            int(stored[b"rows"]),
            stored[b"features"],
            stored[b"outputs"],
            stored.get(b"entity_ids"),
        )
    except (KeyError, ValueError):
        return None


def _labels(stored: dict[bytes, bytes]) -> Iterator[tuple[int, float, float | None]]:
    """(row, actual, labelled_at) of each label field of a block hash."""
    for name, value in stored.items():
        if not name.startswith(_LABEL):
            continue
        row_field = name[len(_LABEL) :]
        at = stored.get(_LABELLED_AT + row_field)
        try:
            yield int(row_field), float(value), None if at is None else float(at)
        except ValueError:
            continue  # not a label the log wrote


def _labelled_block(
    block_key: str, stored: dict[bytes, bytes], cutoff: float
) -> LabelledBlock | None:
    """A block hash and its labels at or after ``cutoff``; None if it is not a block."""
    block = _stored_block(stored)
    if block is None:
        return None
    labels = [
        Label(f"{block_key}{row:05x}", row, actual, labelled_at)
        for row, actual, labelled_at in _labels(stored)
        if (block.created_at if labelled_at is None else labelled_at) >= cutoff
    ]
    if not labels:
        return None
    labels.sort(key=lambda label: label.row)
    return LabelledBlock(block, labels)


def _scored_block(stored: dict[bytes, bytes], since: float | None) -> ScoredBlock | None:
    """A block hash as the comparison reads it; None if it is not a block or is older than
    ``since`` (its created_at is read again: the hash may have been replaced since the scan)."""
    block = _stored_block(stored)
    if block is None or (since is not None and block.created_at < since):
        return None
    actual = np.full(max(block.rows, 0), np.nan)
    for row, label, _ in _labels(stored):
        if 0 <= row < block.rows:
            actual[row] = label
    shadow_version = stored.get(b"shadow_version")
    return scored_block(
        block.model_version,
        block.rows,
        block.outputs,
        actual,
        _number(stored.get(b"inference_ms"), float),
        _number(stored.get(b"inference_rows"), int),
        None if shadow_version is None else shadow_version.decode(),
        stored.get(b"shadow_outputs"),
        _number(stored.get(b"shadow_inference_ms"), float),
        _number(stored.get(b"shadow_inference_rows"), int),
    )
