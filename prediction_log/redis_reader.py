"""Reading the Redis log (:class:`prediction_log.reading.PredictionLogReader`): the slot hashes
under the log's key prefix (``redis_format``), scanned a page at a time, each read by its field
names first, then its labels, then its blocks a group at a time.

A label lives in its block's hash, so an expired hash takes its labels with it: Redis never
reports a label whose block is missing. SCAN may return a key twice when the keyspace shrinks
during the scan (after a mass expiry): both readers remember the hashes they read -- at most
16 per 10-s slot of the retention (~35,000 for 6 h), whatever the traffic.
"""

from __future__ import annotations

import math
import time
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
from prediction_log.records import ID_SLOT_S
from prediction_log.redis_format import (
    BLOCK_FIELD_BYTES,
    KEY_PATTERN,
    LABEL_FIELD_BYTES,
    PackedBlock,
    block_key_of,
    label_row,
    slot_age,
    slot_of,
    unpack_block,
    unpack_label,
    version_name,
    versions_of,
)
from prediction_log.settings import redacted_url

_T = TypeVar("_T")


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
        """The slot hashes' names, ``page`` at a time, each once."""
        keys = self._client.scan_iter(match=glob_escape(self._prefix) + KEY_PATTERN, count=page)
        seen: set[bytes] = set()
        for names in batched(keys, page):
            fresh = [name for name in dict.fromkeys(names) if name not in seen]
            seen.update(fresh)
            yield fresh

    def _pipelined(self, keys: list[bytes], command: str, *args: Any) -> list[Any]:
        """One ``command`` per key in one round trip; a key of another type gives an error
        object in its place, not an exception."""
        with self._client.pipeline(transaction=False) as pipe:
            for key in keys:
                getattr(pipe, command)(key, *args)
            return pipe.execute(raise_on_error=False)

    def _hashes(self, page: int) -> Iterator[SlotHash]:
        """Each slot hash's name and field names (one round trip per page of keys)."""
        for keys in self._scan(page):
            for key, names in zip(keys, self._pipelined(keys, "hkeys"), strict=True):
                if isinstance(names, list) and names:  # empty: expired since the scan
                    yield SlotHash(self._client, key, len(self._prefix), names)

    def labelled_blocks(
        self,
        since: float | None = None,
        *,
        page: int = LABEL_PAGE,
        group: int = LABEL_BLOCK_GROUP,
    ) -> Iterator[list[LabelledBlock]]:
        """The labels given at or after ``since`` with their blocks: hash names scanned
        ``page`` at a time, their field names tell the labels, read with the hash's model
        versions in one round trip, and the labelled blocks ``group`` at a time."""
        return self._reading(self._labelled(since, page, group))

    def _labelled(
        self, since: float | None, page: int, group: int
    ) -> Iterator[list[LabelledBlock]]:
        cutoff = -math.inf if since is None else since
        for stored in self._hashes(page):
            if not stored.label_names:
                continue
            labels = {
                field: rows
                for field, rows in stored.labels().items()
                if any(at >= cutoff for _, _, at in rows.values())
            }
            for fields in batched(list(labels), group):
                found = []
                for field, block in zip(fields, stored.blocks(fields), strict=True):
                    if block is None:
                        continue
                    block_key = stored.block_key(field)
                    kept = [
                        Label(f"{block_key}{row:05x}", row, actual, at)
                        for row, (_, actual, at) in sorted(labels[field].items())
                        if at >= cutoff
                    ]
                    found.append(LabelledBlock(stored.stored_block(block), kept))
                yield found

    def scored_blocks(
        self,
        since: float | None = None,
        *,
        page: int = SCAN_PAGE,
        group: int = SCORED_BLOCK_GROUP,
    ) -> Iterator[list[ScoredBlock]]:
        """The blocks created at or after ``since``, with their labels: hash names scanned
        ``page`` at a time, those of slots wholly before ``since`` skipped unread (the slot is
        in the name), the others' labels and versions read in one round trip, and their
        blocks ``group`` per round trip and per list yielded."""
        return self._reading(self._scored(since, page, group))

    def _scored(self, since: float | None, page: int, group: int) -> Iterator[list[ScoredBlock]]:
        now = time.time()
        for stored in self._hashes(page):
            if since is not None and stored.before(since, now):
                continue
            labels = stored.labels()
            for fields in batched(stored.block_names, group):
                scored = []
                for field, block in zip(fields, stored.blocks(fields), strict=True):
                    if block is None or (since is not None and block.created_at < since):
                        continue
                    actual = np.full(block.rows, np.nan)
                    for row, (_, label, _) in labels.get(field, {}).items():
                        if 0 <= row < block.rows:
                            actual[row] = label
                    found = stored.scored_block(block, actual)
                    if found is not None:
                        scored.append(found)
                yield scored


class SlotHash:
    """One slot hash as a reader sees it: its field names, then what it reads of it."""

    def __init__(
        self, client: redis.Redis, key: bytes, prefix_length: int, names: list[bytes]
    ) -> None:
        self._client, self._key = client, key
        self._suffix = key[prefix_length:].decode(errors="replace")
        self.block_names = [n for n in names if len(n) == BLOCK_FIELD_BYTES]
        self.label_names = [n for n in names if len(n) == LABEL_FIELD_BYTES]
        self._version_names = [n for n in names if n not in self.block_names + self.label_names]
        self._versions: dict[int, str] | None = None

    def before(self, since: float, now: float) -> bool:
        """Whether the hash's slot ended over a slot before ``since`` (its blocks are older)."""
        slot = slot_of(self._suffix)
        if slot is None:
            return False
        slot_end = (math.floor(now / ID_SLOT_S) - slot_age(slot, now) + 1) * ID_SLOT_S
        return slot_end + ID_SLOT_S < since

    def labels(self) -> dict[bytes, dict[int, tuple[int, float, float]]]:
        """The hash's labels by block field and row: (row, actual, labelled_at); and its model
        versions, read in the same round trip."""
        names = self.label_names + self._version_names
        values: list[bytes | None] = (
            self._client.hmget(self._key, names)  # type: ignore[assignment,arg-type]
            if names
            else []
        )
        self._versions = versions_of(
            {
                name: value
                for name, value in zip(names, values, strict=True)
                if value is not None and name in self._version_names
            }
        )
        found: dict[bytes, dict[int, tuple[int, float, float]]] = {}
        for name, value in zip(self.label_names, values, strict=False):
            label = None if value is None else unpack_label(value)
            if label is not None:
                field, row = label_row(name)
                found.setdefault(field, {})[row] = (row, *label)
        return found

    def blocks(self, fields: list[bytes]) -> list[PackedBlock | None]:
        """The blocks at ``fields`` (None for one gone or not a block), in one round trip."""
        values: list[bytes | None] = self._client.hmget(self._key, fields)  # type: ignore[assignment,arg-type]
        return [None if value is None else unpack_block(value) for value in values]

    def block_key(self, field: bytes) -> str:
        """The block key of the block at ``field``."""
        return block_key_of(self._suffix, field)

    def _version(self, crc: int) -> str:
        return version_name(self._versions or {}, crc)

    def stored_block(self, block: PackedBlock) -> StoredBlock:
        """A block as the export reads it."""
        return StoredBlock(
            block.created_at,
            self._version(block.version_crc),
            block.rows,
            block.features,
            block.outputs,
            block.entity_ids,
        )

    def scored_block(self, block: PackedBlock, actual: np.ndarray) -> ScoredBlock | None:
        """A block as the comparison reads it."""
        return scored_block(
            self._version(block.version_crc),
            block.rows,
            block.outputs,
            actual,
            None if block.call is None else block.call.ms,
            None if block.call is None else block.call.rows,
            None if block.shadow_crc is None else self._version(block.shadow_crc),
            block.shadow_outputs,
            None if block.shadow_call is None else block.shadow_call.ms,
            None if block.shadow_call is None else block.shadow_call.rows,
        )
