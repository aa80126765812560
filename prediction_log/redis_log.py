"""The shared prediction log of a cluster: the blocks of each 10-s slot in a few Redis hashes
(``redis_format``), expiring after the retention, so feedback can reach any replica.

Its cost is bounded by the TTL (retention) and, on the Redis side, by ``maxmemory``: ~184 B
per single-row prediction at a pod's capacity, ~3.7 GiB per 1,000 requests/s at 6 h; use
``noeviction`` so that a full Redis shows as failing writes rather than silently evicted
predictions (docs/prediction-log.md, "Sizing maxmemory").
"""

from __future__ import annotations

import time
from typing import Any

import redis
import redis.asyncio as aioredis

from prediction_log.buffered import BufferedLog, LogObserver
from prediction_log.records import (
    ID_SLOT_S,
    FeedbackResult,
    PredictionBlock,
    joined,
    split_prediction_id,
    stored_record,
)
from prediction_log.redis_format import (
    block_location,
    crc_field,
    label_field,
    pack_block,
    pack_label,
    unpack_block,
    unpack_label,
    version_field,
    version_name,
)
from prediction_log.settings import DEFAULT_REDIS_KEY_PREFIX


class RedisPredictionLog(BufferedLog):
    """Prediction blocks in Redis hashes with a TTL, shared by every replica: a hash per time
    slot and shard, a block per field, a label per field set with HSETNX so that exactly one
    replica joins it (``redis_format``)."""

    backend = "redis"
    store_errors = (redis.RedisError, OSError, TimeoutError)

    def __init__(
        self,
        redis_url: str,
        retention_s: float,
        *,
        key_prefix: str = DEFAULT_REDIS_KEY_PREFIX,
        max_queue_rows: int = 100_000,
        sample_rate: float = 1.0,
        timeout_s: float = 1.0,
        flush_interval_s: float = 0.1,
        observer: LogObserver | None = None,
    ) -> None:
        super().__init__(
            max_queue_rows=max_queue_rows,
            sample_rate=sample_rate,
            flush_interval_s=flush_interval_s,
            observer=observer,
        )
        self._ttl = max(int(retention_s), 1)
        # A hash takes blocks during its slot (and a late retried write): every write renews
        # its TTL, so each block is kept at least the retention, at most one slot more.
        self._key_ttl = self._ttl + ID_SLOT_S
        self._prefix = key_prefix
        self._client = aioredis.Redis.from_url(
            redis_url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
        )

    async def _write(self, blocks: list[PredictionBlock]) -> None:
        hashes: dict[str, dict[bytes, bytes]] = {}
        for block in blocks:
            location = block_location(block.block_key)
            if location is None:  # not made by new_prediction_ids: a bug, dropped and logged
                raise ValueError(f"not a block key: {block.block_key!r}")
            suffix, field = location
            fields = hashes.setdefault(self._prefix + suffix, {})
            fields[field] = pack_block(block)
            # Once per hash and flush (the same value again is a no-op in effect).
            fields[version_field(block.model_version)] = block.model_version.encode()
            if block.shadow is not None:
                shadow = block.shadow.model_version
                fields[version_field(shadow)] = shadow.encode()
        async with self._client.pipeline(transaction=False) as pipe:
            for key, fields in hashes.items():
                pipe.hset(key, mapping=fields)  # type: ignore[arg-type,unused-ignore]
                pipe.expire(key, self._key_ttl)
            await pipe.execute()

    async def _attach(self, prediction_id: str, actual: float) -> FeedbackResult:
        split = split_prediction_id(prediction_id)
        located = None if split is None else block_location(split[0])
        if split is None or located is None:
            return FeedbackResult("unknown", None, None)
        row = split[1]
        key, field = self._prefix + located[0], located[1]
        value: bytes | None = await self._client.hget(key, field)  # type: ignore[misc,arg-type]
        block = None if value is None else unpack_block(value)
        if block is None or not 0 <= row < block.rows:
            return FeedbackResult("unknown", None, None)
        label = label_field(field, row)
        # HSETNX makes the join atomic across replicas: exactly one caller sees "joined", and
        # the label (actual and time, one field) is the first caller's; the HGET after it in the
        # same transaction reads what is stored. If the hash expired since the read, HSETNX
        # creates one without a TTL, which no volatile-* policy could ever evict: EXPIRE NX
        # gives it one (a no-op on a live hash).
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.hsetnx(key, label, pack_label(actual, time.time()))  # type: ignore[arg-type]
            pipe.hget(key, label)  # type: ignore[arg-type]
            pipe.expire(key, self._key_ttl, nx=True)
            crcs = [block.version_crc] + ([] if block.shadow_crc is None else [block.shadow_crc])
            pipe.hmget(key, [crc_field(crc) for crc in crcs])
            first, stored, _, names = await pipe.execute()
        known = {
            crc: name.decode() for crc, name in zip(crcs, names, strict=True) if name is not None
        }
        record = stored_record(
            prediction_id,
            row,
            block.created_at,
            version_name(known, block.version_crc),
            block.rows,
            block.features,
            block.outputs,
            None if block.shadow_crc is None else version_name(known, block.shadow_crc),
            block.shadow_outputs,
            block.feature_sources,
        )
        if record is None:
            return FeedbackResult("unknown", None, None)
        if first:
            return joined(record, actual, None)
        earlier = unpack_label(stored) if stored is not None else None
        return joined(record, actual, None if earlier is None else earlier[0])

    def _details(self) -> dict[str, Any]:
        return {"key_prefix": self._prefix, "ttl_s": self._ttl}

    async def _close(self) -> None:
        await self._client.aclose()
