"""Online feature store: entity averages by id, embedded in the model or kept in Redis.

Both backends answer :meth:`FeatureStore.lookup` for a batch of orders: the ids of each of the
contract's entity fields, one aggregate (``contract.entity_feature(field)``) per id. A lookup
never raises: a slow or broken store yields ``None`` values (the caller uses defaults) and
marks the store ``degraded`` until a later lookup succeeds.

Redis keys are ``delivery_eta:<snapshot>:<contract.entity_key(field)>:<id>``: the snapshot is
a hash of the model's entity tables, so a model never reads another model's aggregates.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import redis
import redis.asyncio as aioredis

from models.contract import FeatureContract
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

    async def lookup(self, ids: Mapping[str, Sequence[str]]) -> OnlineValues:
        """Each entity feature's values for ``ids`` (entity field -> the orders' ids, as
        ``FeatureAssembler.entity_ids`` gives them); ``None`` where unknown or when the store
        failed."""
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

    def __init__(self, entities: EntityFeatures, contract: FeatureContract) -> None:
        # (entity field, its aggregate, the aggregate's table), in the contract's order.
        self._tables = [
            (field, feature, entities.tables[feature])
            for field, feature in zip(contract.entity_fields, contract.entity_features, strict=True)
        ]

    @property
    def state(self) -> StoreState:
        return "ready"

    async def lookup(self, ids: Mapping[str, Sequence[str]]) -> OnlineValues:
        return lookup_tables(self._tables, ids)

    async def check(self) -> bool:
        return True

    async def close(self) -> None:
        return None


def lookup_tables(
    tables: Sequence[tuple[str, str, Mapping[str, float]]], ids: Mapping[str, Sequence[str]]
) -> OnlineValues:
    """:meth:`FeatureStore.lookup` in in-memory tables: (entity field, feature, table) each."""
    # map(table.get): the loop over ids runs in C (a list comprehension costs ~1.4x more).
    return OnlineValues(
        {feature: list(map(table.get, ids[field])) for field, feature, table in tables}
    )


def snapshot_id(entities: EntityFeatures) -> str:
    """Short content hash of a feature snapshot: Redis keys are namespaced by it, so a model
    never reads aggregates materialised for another model."""
    payload = json.dumps(entities.to_json_dict(), sort_keys=True).encode()
    return hashlib.sha256(payload).hexdigest()[:12]


def shared_entity_keys(contract: FeatureContract) -> str | None:
    """Why ``contract``'s entities cannot share one Redis namespace (two entity fields with the
    same key would overwrite each other's ids), or None."""
    keys = [contract.entity_key(field) for field in contract.entity_fields]
    shared = sorted({key for key in keys if keys.count(key) > 1})
    if not shared:
        return None
    fields = [f for f in contract.entity_fields if contract.entity_key(f) in shared]
    return f"entity fields {fields} share the feature-store key(s) {shared}: give each its own key"


@dataclass(frozen=True)
class SnapshotKeys:
    """Where one feature snapshot lives in Redis: a key prefix per entity field (in the
    contract's order) and the marker written once the snapshot is complete."""

    prefixes: dict[str, str]
    """Entity field -> ``delivery_eta:<snapshot>:<entity key>:``."""
    marker: str

    @classmethod
    def of(cls, entities: EntityFeatures, contract: FeatureContract) -> SnapshotKeys:
        """The keys of ``entities`` (the snapshot of a model trained with ``contract``)."""
        problem = shared_entity_keys(contract)
        if problem is not None:
            raise ValueError(problem)
        base = f"{KEY_PREFIX}:{snapshot_id(entities)}"
        keys = [contract.entity_key(field) for field in contract.entity_fields]
        prefixes = {
            field: f"{base}:{key}:" for field, key in zip(contract.entity_fields, keys, strict=True)
        }
        return cls(prefixes, f"{base}:materialized")


def materialize(entities: EntityFeatures, contract: FeatureContract, redis_url: str) -> int:
    """Load ``entities`` (a model's snapshot, trained with ``contract``) into Redis under the
    snapshot's namespace; returns keys written."""
    keys = SnapshotKeys.of(entities, contract)
    client = redis.Redis.from_url(redis_url)
    written = 0
    try:
        with client.pipeline(transaction=False) as pipe:
            for field, prefix in keys.prefixes.items():
                table = entities.tables[contract.entity_feature(field)]
                for entity, value in table.items():
                    pipe.set(prefix + entity, repr(value))
                written += len(table)
            # Written last: readiness treats the snapshot as complete only once this exists.
            pipe.set(keys.marker, str(int(time.time())))
            pipe.execute()
    finally:
        client.close()
    return written + 1


class RedisFeatureStore:
    """Entity averages in Redis, one MGET per request with a hard timeout."""

    backend = "redis"

    def __init__(
        self,
        redis_url: str,
        entities: EntityFeatures,
        contract: FeatureContract,
        timeout_s: float,
    ) -> None:
        self._timeout_s = timeout_s
        keys = SnapshotKeys.of(entities, contract)
        self._marker = keys.marker
        # (entity field, its aggregate, the field's key prefix), in the contract's order.
        self._columns = [
            (field, contract.entity_feature(field), prefix)
            for field, prefix in keys.prefixes.items()
        ]
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

    def _nothing(self, ids: Mapping[str, Sequence[str]]) -> OnlineValues:
        rows = len(ids[self._columns[0][0]]) if self._columns else 0
        return OnlineValues.missing([feature for _, feature, _ in self._columns], rows, True)

    async def lookup(self, ids: Mapping[str, Sequence[str]]) -> OnlineValues:
        # The snapshot marker rides in the same MGET: a Redis that restarted empty answers every
        # key with nothing, which must count as a failure, not as "all entities unknown".
        keys = [self._marker]
        for field, _, prefix in self._columns:
            keys += [prefix + i for i in ids[field]]
        try:
            marker, *raw = await asyncio.wait_for(self._client.mget(keys), timeout=self._timeout_s)
        except (redis.RedisError, OSError, TimeoutError) as exc:
            self._failed(f"{type(exc).__name__}: {exc}")
            return self._nothing(ids)
        if marker is None:
            self._failed(f"snapshot {self._marker} not materialized; run `make materialize`")
            return self._nothing(ids)
        if self._state != "ready":
            self._state = "ready"
            logger.info("feature store (redis) recovered")
        values = [None if v is None else float(v) for v in raw]
        found: dict[str, list[float | None]] = {}
        start = 0
        for field, feature, _ in self._columns:
            end = start + len(ids[field])
            found[feature] = values[start:end]
            start = end
        return OnlineValues(found)

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
