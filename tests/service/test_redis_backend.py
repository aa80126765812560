"""The service with the Redis feature store: online values, outage fallback, recovery."""

import time

import httpx
import pytest

from models.store.artifact import load_artifact
from serving.pipeline.feature_store import materialize
from tests.harness.local_server import local_server
from tests.service.conftest import ORDER

pytestmark = pytest.mark.redis


@pytest.mark.parametrize("readiness_requires_store", [False, True])
def test_redis_backend_serves_online_features_and_survives_an_outage(
    registered,
    redis_server,
    tmp_path,
    readiness_requires_store: bool,  # type: ignore[no-untyped-def]
) -> None:
    artifact = load_artifact(registered.tag)
    materialize(artifact.entities, artifact.contract, redis_server.url)
    env = {
        "DELIVERY_ETA_READINESS_REQUIRES_STORE": str(readiness_requires_store).lower(),
        "DELIVERY_ETA_MODEL_TAG": registered.tag,
        "DELIVERY_ETA_FEATURE_STORE_BACKEND": "redis",
        "DELIVERY_ETA_REDIS_URL": redis_server.url,
        "DELIVERY_ETA_FEATURE_STORE_TIMEOUT_MS": "100",
    }
    with (
        local_server(tmp_path / "server.log", env=env) as server,
        httpx.Client(base_url=server.url, timeout=10) as client,
    ):
        online = client.post("/v1/predict", json=ORDER)
        assert online.status_code == 200
        assert set(online.json()["features_source"].values()) == {"online"}
        assert client.get("/health").json()["feature_store"] == {
            "backend": "redis",
            "state": "ready",
        }

        redis_server.stop()
        during = [client.post("/v1/predict", json=ORDER) for _ in range(5)]
        assert [r.status_code for r in during] == [200] * 5
        assert all(set(r.json()["features_source"].values()) == {"default"} for r in during)
        assert client.get("/health").json()["status"] == "degraded"
        # Degraded but still serving: ready unless configured to require the store.
        assert client.get("/readyz").status_code == (503 if readiness_requires_store else 200)
        assert client.get("/livez").status_code == 200

        redis_server.start()
        materialize(artifact.entities, artifact.contract, redis_server.url)
        deadline = time.monotonic() + 10
        while client.get("/health").json()["feature_store"]["state"] != "ready":
            assert time.monotonic() < deadline, "did not recover after Redis came back"
            client.get("/readyz")  # readiness probes re-check the store
            time.sleep(0.2)
        assert client.get("/readyz").status_code == 200
        after = client.post("/v1/predict", json=ORDER)
        assert set(after.json()["features_source"].values()) == {"online"}
        assert after.json()["predicted_delivery_time_min"] == pytest.approx(
            online.json()["predicted_delivery_time_min"], abs=1e-9
        )
    assert "Traceback" not in server.log()


def test_redis_backend_is_not_ready_until_the_snapshot_is_materialized(
    registered, redis_server, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    env = {
        "DELIVERY_ETA_MODEL_TAG": registered.tag,
        "DELIVERY_ETA_FEATURE_STORE_BACKEND": "redis",
        "DELIVERY_ETA_REDIS_URL": redis_server.url,
    }
    with (
        pytest.raises(TimeoutError),
        local_server(tmp_path / "server.log", env=env, ready_timeout_s=20),
    ):
        pass


def test_feedback_reaching_another_replica_joins_through_the_shared_redis_log(
    registered, redis_server, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    env = {
        "DELIVERY_ETA_MODEL_TAG": registered.tag,
        "DELIVERY_ETA_PREDICTION_LOG_BACKEND": "redis",
        "DELIVERY_ETA_REDIS_URL": redis_server.url,
    }
    with (
        local_server(tmp_path / "a.log", env=env) as replica_a,
        local_server(tmp_path / "b.log", env=env) as replica_b,
    ):
        prediction = httpx.post(f"{replica_a.url}/v1/predict", json=ORDER, timeout=10).json()
        # Records are flushed every 100 ms, off the request path; real labels come minutes later.
        time.sleep(0.5)
        feedback = {"prediction_id": prediction["prediction_id"], "actual_delivery_time_min": 33.0}
        joined = httpx.post(f"{replica_b.url}/v1/feedback", json=feedback, timeout=10)
        assert joined.status_code == 200, joined.text
        assert joined.json()["status"] == "joined"
        assert (
            joined.json()["predicted_delivery_time_min"]
            == prediction["predicted_delivery_time_min"]
        )
        again = httpx.post(f"{replica_a.url}/v1/feedback", json=feedback, timeout=10)
        assert again.json()["status"] == "duplicate"
        log_health = httpx.get(f"{replica_b.url}/health").json()["prediction_log"]
        assert (log_health["backend"], log_health["state"]) == ("redis", "ready")


def test_a_redis_log_outage_answers_feedback_503_and_keeps_the_records(
    registered, redis_server, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    env = {
        "DELIVERY_ETA_MODEL_TAG": registered.tag,
        "DELIVERY_ETA_WORKERS": "1",
        "DELIVERY_ETA_PREDICTION_LOG_BACKEND": "redis",
        "DELIVERY_ETA_REDIS_URL": redis_server.url,
        "DELIVERY_ETA_PREDICTION_LOG_TIMEOUT_MS": "300",
    }
    with (
        local_server(tmp_path / "server.log", env=env) as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        before = client.post("/v1/predict", json=ORDER).json()["prediction_id"]
        time.sleep(0.5)
        redis_server.stop()
        during = [client.post("/v1/predict", json=ORDER) for _ in range(5)]
        time.sleep(0.5)
        started = time.monotonic()
        feedback = client.post(
            "/v1/feedback", json={"prediction_id": before, "actual_delivery_time_min": 30.0}
        )
        feedback_s = time.monotonic() - started
        health = client.get("/health").json()
        redis_server.start()
        deadline = time.monotonic() + 10
        while client.get("/health").json()["prediction_log"].get("state") != "ready":
            if time.monotonic() > deadline:
                break  # asserted below, with the figures printed first
            time.sleep(0.2)
        recovered = client.get("/health").json()["prediction_log"].get("state") == "ready"
        # Redis restarted empty: what was written before is gone, what was queued is not.
        joined = [
            client.post(
                "/v1/feedback",
                json={"prediction_id": r.json()["prediction_id"], "actual_delivery_time_min": 30.0},
            ).status_code
            for r in during
        ]
        print(
            f"redis log outage: predictions {[r.status_code for r in during]}, feedback"
            f" {feedback.status_code} in {feedback_s:.2f} s, health {health},"
            f" joined after restart {joined}"
        )
        assert [r.status_code for r in during] == [200] * 5
        assert feedback.status_code == 503 and feedback.headers.get("Retry-After"), feedback.text
        assert feedback_s < 5
        assert health["prediction_log"]["state"] == "failing", health
        assert recovered, "the log did not recover after Redis came back"
        assert joined == [200] * 5
    assert "Traceback" not in server.log()
