"""The shared prediction log of a cluster: one Redis hash per request, expiring after the
retention, so feedback can reach any replica.

Its cost is bounded by the TTL (retention) and, on the Redis side, by ``maxmemory`` with a
``volatile-*`` eviction policy: every key written here has a TTL and the feature snapshot's
keys have none, so Redis evicts predictions (``volatile-ttl``: the oldest first) and never
the features (docs/prediction-log.md).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import redis
import redis.asyncio as aioredis

from prediction_log.buffered import BufferedLog, LogObserver
from prediction_log.records import (
    FeedbackResult,
    PredictionBlock,
    joined,
    split_prediction_id,
    stored_record,
)
from prediction_log.settings import DEFAULT_REDIS_KEY_PREFIX

BLOCK_FIELDS = (
    "created_at",
    "model_version",
    "rows",
    "features",
    "outputs",
    "entity_ids",
    "feature_sources",
    "inference_ms",
    "inference_rows",
    "shadow_version",
    "shadow_outputs",
    "shadow_inference_ms",
    "shadow_inference_rows",
)
"""A block hash's fields (as ``sqlite_schema.BLOCK_COLUMNS`` without the key, which is in the
hash's name); the first five are always set, the others when the block has them."""
LABEL_FIELD = "actual:"
"""A label is the block hash's field ``actual:<row>`` (the row in decimal)..."""
LABELLED_AT_FIELD = "labelled_at:"
"""... and its time ``labelled_at:<row>``."""


class RedisPredictionLog(BufferedLog):
    """Prediction blocks as Redis hashes with a TTL, shared by every replica; a label is the
    block's field ``actual:<row>`` (and its time ``labelled_at:<row>``), set with HSETNX so
    exactly one replica joins it. The hash's ``entity_ids`` field holds the rows' entity ids
    (one column per entity field); ``inference_ms`` and ``inference_rows`` the champion's model
    call, and ``shadow_*`` the challenger's outputs and call, when set."""

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
        self._prefix = key_prefix
        self._client = aioredis.Redis.from_url(
            redis_url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
        )

    async def _write(self, blocks: list[PredictionBlock]) -> None:
        async with self._client.pipeline(transaction=False) as pipe:
            for block in blocks:
                key = self._prefix + block.block_key
                features, outputs = block.encoded()
                fields: dict[str, bytes | float | int | str] = {
                    "created_at": block.created_at,
                    "model_version": block.model_version,
                    "rows": len(block),
                    "features": features,
                    "outputs": outputs,
                }
                if block.entity_ids is not None:
                    fields["entity_ids"] = block.entity_ids
                if block.feature_sources is not None:
                    fields["feature_sources"] = np.ascontiguousarray(
                        block.feature_sources, dtype=np.int8
                    ).tobytes()
                if block.call is not None:
                    fields["inference_ms"] = block.call.ms
                    fields["inference_rows"] = block.call.rows
                if block.shadow is not None:
                    fields["shadow_version"] = block.shadow.model_version
                    fields["shadow_outputs"] = block.shadow.encoded()
                    fields["shadow_inference_ms"] = block.shadow.call.ms
                    fields["shadow_inference_rows"] = block.shadow.call.rows
                pipe.hset(key, mapping=fields)
                pipe.expire(key, self._ttl)
            await pipe.execute()

    async def _attach(self, prediction_id: str, actual: float) -> FeedbackResult:
        located = split_prediction_id(prediction_id)
        if located is None:
            return FeedbackResult("unknown", None, None)
        block_key, row = located
        key = self._prefix + block_key
        fields = [
            "created_at",
            "model_version",
            "rows",
            "features",
            "outputs",
            "shadow_version",
            "shadow_outputs",
            "feature_sources",
        ]
        stored: list[bytes | None] = await self._client.hmget(key, fields)  # type: ignore[misc]
        if stored[0] is None:
            return FeedbackResult("unknown", None, None)
        (
            created_at,
            model_version,
            rows,
            features,
            outputs,
            shadow_version,
            shadow_outputs,
            feature_sources,
        ) = stored
        assert (
            created_at and model_version and rows and features is not None and outputs is not None
        )
        record = stored_record(
            prediction_id,
            row,
            float(created_at),
            model_version.decode(),
            int(rows),
            features,
            outputs,
            None if shadow_version is None else shadow_version.decode(),
            shadow_outputs,
            feature_sources,
        )
        if record is None:
            return FeedbackResult("unknown", None, None)
        label = f"{LABEL_FIELD}{row}"
        # HSETNX makes the join atomic across replicas: exactly one caller sees "joined" (and
        # the label's time is the first caller's too). If the block expired since the read,
        # HSETNX creates a hash without a TTL, which no volatile-* eviction policy could ever
        # remove: EXPIRE NX gives it one (a no-op on a live block).
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.hsetnx(key, label, repr(actual))
            pipe.hsetnx(key, f"{LABELLED_AT_FIELD}{row}", repr(time.time()))
            pipe.expire(key, self._ttl, nx=True)
            first, _, _ = await pipe.execute()
        if first:
            return joined(record, actual, None)
        earlier = await self._client.hget(key, label)  # type: ignore[misc]
        return joined(record, actual, float(earlier))

    def _details(self) -> dict[str, Any]:
        return {"key_prefix": self._prefix, "ttl_s": self._ttl}

    async def _close(self) -> None:
        await self._client.aclose()
