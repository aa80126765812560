"""Feature stores: embedded lookups, and a real Redis that may go away and come back."""

import pytest

from models.features import EntityFeatures
from serving.pipeline.feature_store import EmbeddedFeatureStore, RedisFeatureStore, materialize

ENTITIES = EntityFeatures(
    restaurant_avg_delivery_time={"r_1": 21.5, "r_2": 40.0},
    driver_avg_delivery_time={"d_1": 30.25},
    defaults={"restaurant_avg_delivery_time": 33.0, "driver_avg_delivery_time": 33.0},
    history_end="2026-03-01 00:00:00",
)


async def test_embedded_store_returns_known_values_and_none_for_unknown() -> None:
    store = EmbeddedFeatureStore(ENTITIES)
    values = await store.lookup(["r_2", "nope"], ["d_1", "d_9"])
    assert list(values.restaurant_avg_delivery_time) == [40.0, None]
    assert list(values.driver_avg_delivery_time) == [30.25, None]
    assert store.state == "ready" and await store.check()


@pytest.mark.redis
async def test_redis_store_needs_materialize_then_serves_the_same_values(redis_server) -> None:  # type: ignore[no-untyped-def]
    store = RedisFeatureStore(redis_server.url, ENTITIES, timeout_s=0.5)
    try:
        assert not await store.check()  # nothing materialised yet: not ready
        assert store.state == "unavailable"
        assert materialize(ENTITIES, redis_server.url) == 4
        assert await store.check() and store.state == "ready"
        values = await store.lookup(["r_1", "nope"], ["d_1", "nope"])
        assert list(values.restaurant_avg_delivery_time) == [21.5, None]
        assert list(values.driver_avg_delivery_time) == [30.25, None]
    finally:
        await store.close()


@pytest.mark.redis
async def test_redis_outage_degrades_to_none_and_recovers(redis_server) -> None:  # type: ignore[no-untyped-def]
    materialize(ENTITIES, redis_server.url)
    store = RedisFeatureStore(redis_server.url, ENTITIES, timeout_s=0.2)
    try:
        assert await store.check()
        redis_server.stop()
        values = await store.lookup(["r_1"], ["d_1"])
        assert list(values.restaurant_avg_delivery_time) == [None]
        assert store.state == "degraded"
        assert not await store.check()

        redis_server.start()  # an empty Redis: the snapshot has to be loaded again
        materialize(ENTITIES, redis_server.url)
        values = await store.lookup(["r_1"], ["d_1"])
        assert list(values.restaurant_avg_delivery_time) == [21.5]
        assert store.state == "ready"
    finally:
        await store.close()


@pytest.mark.redis
async def test_another_models_snapshot_is_not_read(redis_server) -> None:  # type: ignore[no-untyped-def]
    other = EntityFeatures({"r_1": 99.0}, {}, ENTITIES.defaults, "2026-01-01")
    materialize(other, redis_server.url)
    store = RedisFeatureStore(redis_server.url, ENTITIES, timeout_s=0.5)
    try:
        assert not await store.check()
        assert list((await store.lookup(["r_1"], ["d_1"])).restaurant_avg_delivery_time) == [None]
    finally:
        await store.close()
