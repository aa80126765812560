"""Online feature store: entity averages by id, embedded in the model or kept in Redis.

Both backends answer :meth:`FeatureStore.lookup` for a batch of orders. A lookup never raises:
a slow or broken store yields ``None`` values (the caller uses defaults) and marks the store
``degraded`` until a later lookup succeeds.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Sequence
from typing import Literal, Protocol

import redis
import redis.asyncio as aioredis

from models.features import EntityFeatures, OnlineValues

logger = logging.getLogger(__name__)

StoreState = Literal["ready", "degraded", "unavailable"]
KEY_PREFIX = "delivery_eta"
# Degradation is logged at most this often, so an outage does not flood the log.
_LOG_EVERY_S = 10.0


class FeatureStore(Protocol):
    """What the prediction path needs from a feature store."""

    backend: str

    @property
    def state(self) -> StoreState:
        """``ready`` when lookups work, ``degraded`` after a failure, ``unavailable`` if never."""
        ...

    async def lookup(
        self, restaurant_ids: Sequence[str], driver_ids: Sequence[str]
    ) -> OnlineValues:
        """Values for the given ids; ``None`` where unknown or when the store failed."""
        ...

    async def check(self) -> bool:
        """Probe the store (for readiness); updates :attr:`state`."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


class EmbeddedFeatureStore:
    """In-process dictionaries materialised by ``train.py`` next to the model."""

    backend = "embedded"

    def __init__(self, entities: EntityFeatures) -> None:
        self._restaurants = entities.restaurant_avg_delivery_time
        self._drivers = entities.driver_avg_delivery_time

    @property
    def state(self) -> StoreState:
        return "ready"

    async def lookup(
        self, restaurant_ids: Sequence[str], driver_ids: Sequence[str]
    ) -> OnlineValues:
        return OnlineValues(
            restaurant_avg_delivery_time=[self._restaurants.get(i) for i in restaurant_ids],
            driver_avg_delivery_time=[self._drivers.get(i) for i in driver_ids],
        )

    async def check(self) -> bool:
        return True

    async def close(self) -> None:
        return None


def snapshot_id(entities: EntityFeatures) -> str:
    """Short content hash of a feature snapshot: Redis keys are namespaced by it, so a model
    never reads aggregates materialised for another model."""
    payload = json.dumps(entities.to_json_dict(), sort_keys=True).encode()
    return hashlib.sha256(payload).hexdigest()[:12]


def _keys(snapshot: str) -> tuple[str, str, str]:
    base = f"{KEY_PREFIX}:{snapshot}"
    return f"{base}:restaurant:", f"{base}:driver:", f"{base}:materialized"


def materialize(entities: EntityFeatures, redis_url: str) -> int:
    """Load ``entities`` into Redis under the snapshot's namespace; returns keys written."""
    restaurant_prefix, driver_prefix, marker = _keys(snapshot_id(entities))
    client = redis.Redis.from_url(redis_url)
    try:
        with client.pipeline(transaction=False) as pipe:
            for entity, value in entities.restaurant_avg_delivery_time.items():
                pipe.set(restaurant_prefix + entity, repr(value))
            for entity, value in entities.driver_avg_delivery_time.items():
                pipe.set(driver_prefix + entity, repr(value))
            # Written last: readiness treats the snapshot as complete only once this exists.
            pipe.set(marker, str(int(time.time())))
            pipe.execute()
    finally:
        client.close()
    return len(entities.restaurant_avg_delivery_time) + len(entities.driver_avg_delivery_time) + 1


class RedisFeatureStore:
    """Entity averages in Redis, one MGET per request with a hard timeout."""

    backend = "redis"

    def __init__(self, redis_url: str, entities: EntityFeatures, timeout_s: float) -> None:
        self._timeout_s = timeout_s
        self._restaurant_prefix, self._driver_prefix, self._marker = _keys(snapshot_id(entities))
        self._client = aioredis.Redis.from_url(
            redis_url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            health_check_interval=0,
        )
        self._state: StoreState = "unavailable"
        self._last_log = 0.0

    @property
    def state(self) -> StoreState:
        return self._state

    def _failed(self, reason: str) -> None:
        if self._state == "ready":
            self._state = "degraded"
        now = time.monotonic()
        if now - self._last_log >= _LOG_EVERY_S:
            self._last_log = now
            logger.warning("feature store (redis) failed, serving defaults: %s", reason)

    async def lookup(
        self, restaurant_ids: Sequence[str], driver_ids: Sequence[str]
    ) -> OnlineValues:
        # The snapshot marker rides in the same MGET: a Redis that restarted empty answers every
        # key with nothing, which must count as a failure, not as "all entities unknown".
        keys = [self._marker]
        keys += [self._restaurant_prefix + i for i in restaurant_ids]
        keys += [self._driver_prefix + i for i in driver_ids]
        missing: list[float | None] = [None] * len(restaurant_ids)
        try:
            marker, *raw = await asyncio.wait_for(self._client.mget(keys), timeout=self._timeout_s)
        except (redis.RedisError, OSError, TimeoutError) as exc:
            self._failed(f"{type(exc).__name__}: {exc}")
            return OnlineValues(missing, list(missing), failed=True)
        if marker is None:
            self._failed(f"snapshot {self._marker} not materialized; run `make materialize`")
            return OnlineValues(missing, list(missing), failed=True)
        if self._state != "ready":
            self._state = "ready"
            logger.info("feature store (redis) recovered")
        values = [None if v is None else float(v) for v in raw]
        n = len(restaurant_ids)
        return OnlineValues(values[:n], values[n:])

    async def check(self) -> bool:
        try:
            materialized = await asyncio.wait_for(
                self._client.exists(self._marker), self._timeout_s
            )
        except (redis.RedisError, OSError, TimeoutError) as exc:
            self._failed(f"{type(exc).__name__}: {exc}")
            return False
        if not materialized:
            self._failed(f"snapshot {self._marker} not materialized; run `make materialize`")
            return False
        self._state = "ready"
        return True

    async def close(self) -> None:
        await self._client.aclose()
