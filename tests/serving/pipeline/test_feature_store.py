"""Feature stores: embedded lookups, and a real Redis that may go away and come back."""

import pytest
import redis

from models.contract import default_contract, parse_contract
from models.features import EntityFeatures
from serving.pipeline.feature_store import (
    EmbeddedFeatureStore,
    RedisFeatureStore,
    materialize,
    shared_entity_keys,
    snapshot_id,
)

CONTRACT = default_contract()
ENTITIES = EntityFeatures(
    tables={
        "restaurant_avg_delivery_time": {"r_1": 21.5, "r_2": 40.0},
        "driver_avg_delivery_time": {"d_1": 30.25},
    },
    defaults={"restaurant_avg_delivery_time": 33.0, "driver_avg_delivery_time": 33.0},
    history_end="2026-03-01 00:00:00",
)


def _ids(restaurants: list[str], drivers: list[str]) -> dict[str, list[str]]:
    return {"restaurant_id": restaurants, "driver_id": drivers}


async def test_embedded_store_returns_known_values_and_none_for_unknown() -> None:
    store = EmbeddedFeatureStore(ENTITIES, CONTRACT)
    values = await store.lookup(_ids(["r_2", "nope"], ["d_1", "d_9"]))
    assert list(values.values["restaurant_avg_delivery_time"]) == [40.0, None]
    assert list(values.values["driver_avg_delivery_time"]) == [30.25, None]
    assert store.state == "ready" and await store.check() and not values.failed


@pytest.mark.redis
async def test_redis_store_needs_materialize_then_serves_the_same_values(redis_server) -> None:  # type: ignore[no-untyped-def]
    store = RedisFeatureStore(redis_server.url, ENTITIES, CONTRACT, timeout_s=0.5)
    try:
        assert not await store.check()  # nothing materialised yet: not ready
        assert store.state == "unavailable"
        assert materialize(ENTITIES, CONTRACT, redis_server.url) == 4
        assert await store.check() and store.state == "ready"
        values = await store.lookup(_ids(["r_1", "nope"], ["d_1", "nope"]))
        assert list(values.values["restaurant_avg_delivery_time"]) == [21.5, None]
        assert list(values.values["driver_avg_delivery_time"]) == [30.25, None]
    finally:
        await store.close()


@pytest.mark.redis
def test_redis_keys_of_the_default_contract_are_the_ones_deployments_hold(redis_server) -> None:  # type: ignore[no-untyped-def]
    # Snapshots materialised before the contract existed must stay readable: same key names.
    materialize(ENTITIES, CONTRACT, redis_server.url)
    client = redis.Redis.from_url(redis_server.url)
    try:
        keys = sorted(k.decode() for k in client.keys("*"))
    finally:
        client.close()
    base = f"delivery_eta:{snapshot_id(ENTITIES)}"
    assert keys == sorted(
        [
            f"{base}:restaurant:r_1",
            f"{base}:restaurant:r_2",
            f"{base}:driver:d_1",
            f"{base}:materialized",
        ]
    )


@pytest.mark.redis
async def test_redis_store_of_another_contract_keys_by_its_entities(redis_server) -> None:  # type: ignore[no-untyped-def]
    contract = parse_contract(
        """
target: {column: minutes}
timestamp: {column: placed_at}
fields:
  kitchen_id: {kind: entity, example: k_1, key: kitchen, feature: kitchen_speed}
  courier_id: {kind: entity, example: c_1}
  km: {kind: number, minimum: 0, maximum: 30, example: 2}
"""
    )
    entities = EntityFeatures(
        tables={"kitchen_speed": {"k_1": 12.0}, "courier_avg_delivery_time": {"c_7": 41.0}},
        defaults={"kitchen_speed": 30.0, "courier_avg_delivery_time": 30.0},
        history_end="2026-03-01 00:00:00",
    )
    assert materialize(entities, contract, redis_server.url) == 3
    store = RedisFeatureStore(redis_server.url, entities, contract, timeout_s=0.5)
    try:
        values = await store.lookup({"kitchen_id": ["k_1", "c_7"], "courier_id": ["c_7", "k_1"]})
        assert values.values == {
            "kitchen_speed": [12.0, None],
            "courier_avg_delivery_time": [41.0, None],
        }
        embedded = EmbeddedFeatureStore(entities, contract)
        same = await embedded.lookup({"kitchen_id": ["k_1", "c_7"], "courier_id": ["c_7", "k_1"]})
        assert same.values == values.values
    finally:
        await store.close()


@pytest.mark.redis
async def test_redis_outage_degrades_to_none_and_recovers(redis_server) -> None:  # type: ignore[no-untyped-def]
    materialize(ENTITIES, CONTRACT, redis_server.url)
    store = RedisFeatureStore(redis_server.url, ENTITIES, CONTRACT, timeout_s=0.2)
    try:
        assert await store.check()
        redis_server.stop()
        values = await store.lookup(_ids(["r_1"], ["d_1"]))
        assert values.failed
        assert values.values == {
            "restaurant_avg_delivery_time": [None],
            "driver_avg_delivery_time": [None],
        }
        assert store.state == "degraded"
        assert not await store.check()

        redis_server.start()  # an empty Redis: the snapshot has to be loaded again
        materialize(ENTITIES, CONTRACT, redis_server.url)
        values = await store.lookup(_ids(["r_1"], ["d_1"]))
        assert list(values.values["restaurant_avg_delivery_time"]) == [21.5]
        assert store.state == "ready"
    finally:
        await store.close()


@pytest.mark.redis
async def test_another_models_snapshot_is_not_read(redis_server) -> None:  # type: ignore[no-untyped-def]
    other = EntityFeatures(
        {"restaurant_avg_delivery_time": {"r_1": 99.0}, "driver_avg_delivery_time": {}},
        ENTITIES.defaults,
        "2026-01-01",
    )
    materialize(other, CONTRACT, redis_server.url)
    store = RedisFeatureStore(redis_server.url, ENTITIES, CONTRACT, timeout_s=0.5)
    try:
        assert not await store.check()
        found = await store.lookup(_ids(["r_1"], ["d_1"]))
        assert list(found.values["restaurant_avg_delivery_time"]) == [None]
    finally:
        await store.close()


def test_entities_sharing_a_key_cannot_share_one_redis_namespace() -> None:
    contract = parse_contract(
        """
target: {column: minutes}
timestamp: {column: placed_at}
fields:
  pickup_id: {kind: entity, example: p_1, key: site, feature: pickup_minutes}
  dropoff_id: {kind: entity, example: d_1, key: site, feature: dropoff_minutes}
  km: {kind: number, minimum: 0, maximum: 30, example: 2}
"""
    )
    problem = shared_entity_keys(contract)
    assert problem is not None and "['site']" in problem and "pickup_id" in problem
    entities = EntityFeatures(
        tables={feature: {} for feature in contract.entity_features},
        defaults=dict.fromkeys(contract.entity_features, 30.0),
        history_end="2026-03-01 00:00:00",
    )
    with pytest.raises(ValueError, match="share the feature-store key"):
        materialize(entities, contract, "redis://127.0.0.1:1/0")
    assert shared_entity_keys(CONTRACT) is None
