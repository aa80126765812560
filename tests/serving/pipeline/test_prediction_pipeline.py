"""The request pipeline without a server: feature lookup -> assembly -> batcher -> model ->
clamp -> prediction log, metrics, drift and the request's log fields.

Every part is the real one ``serving.startup`` builds for a worker (the session's model, the
embedded or Redis feature store, the adaptive batcher, SQLite prediction log, drift monitor,
Prometheus metrics read back from the process registry); the only stand-in is the Redis
outage, a Redis URL where nothing listens.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import prometheus_client
import pytest

from models.contract import default_contract
from models.features import DEFAULT_SOURCE_CODE, FEATURE_SOURCES, OrderColumns
from models.store.artifact import ModelArtifact, load_artifact
from prediction_log.settings import PredictionLogSettings
from serving.pipeline.model_calls import DRIFT_SCORE_EVERY_ROWS
from serving.pipeline.prediction_pipeline import (
    AlreadyLabelled,
    PredictionPipeline,
    UnknownPrediction,
)
from serving.schema import BatchPrediction, order_model
from serving.settings import FeatureStoreSettings, ServiceSettings, ShadowSettings
from serving.startup import build_feature_store, build_metrics, build_pipeline
from serving.telemetry.request_notes import request_scope
from tests.harness.local_server import free_port

KNOWN = {"restaurant_id": "r_0001", "driver_id": "d_0002"}  # in every generated world
UNKNOWN = {"restaurant_id": "r_unknown", "driver_id": "d_unknown"}
Order = order_model(default_contract())  # the session's model has the default contract


def _order(ids: dict[str, str], **extra: Any) -> Any:
    return Order(distance_km=3.2, is_peak_hour=1, order_value=25.0, **ids, **extra)


def _sample(name: str, **labels: str) -> float:
    return prometheus_client.REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture(scope="module")
def artifact(registered) -> ModelArtifact:  # type: ignore[no-untyped-def]
    return load_artifact(registered.tag)


def _settings(tmp_path: Path, **overrides: Any) -> ServiceSettings:
    return ServiceSettings(
        prediction_log=PredictionLogSettings(path=tmp_path / "predictions.sqlite3"), **overrides
    )


async def _pipeline(
    settings: ServiceSettings,
    artifact: ModelArtifact,
    batches: list[tuple[int, int]] | None = None,
) -> PredictionPipeline:
    """The pipeline a worker builds; each model call's (requests, rows) goes to ``batches``."""
    store = build_feature_store(settings, artifact)
    return build_pipeline(
        settings,
        artifact,
        store,
        build_metrics(artifact, store),
        observe_batch=None if batches is None else lambda n, rows: batches.append((n, rows)),
    )


async def _close(pipeline: PredictionPipeline) -> None:
    pipeline.close()
    assert pipeline.prediction_log is not None
    await pipeline.prediction_log.close()
    await pipeline.feature_store.close()


@pytest.fixture
def batches() -> list[tuple[int, int]]:
    """(requests, rows) of every model call the ``pipeline`` fixture made."""
    return []


@pytest.fixture
async def pipeline(
    artifact: ModelArtifact, tmp_path: Path, batches: list[tuple[int, int]]
) -> AsyncIterator[PredictionPipeline]:
    built = await _pipeline(_settings(tmp_path), artifact, batches)
    try:
        yield built
    finally:
        await _close(built)


async def test_features_come_from_the_request_the_store_or_the_defaults(
    pipeline: PredictionPipeline, artifact: ModelArtifact, batches: list[tuple[int, int]]
) -> None:
    orders = [_order(KNOWN), _order(UNKNOWN), _order(KNOWN, driver_avg_delivery_time=55.0)]
    with request_scope("r1", "/v1/predict/batch") as request:
        predictions = (await pipeline.predict(orders)).predictions()

    assert [p.features_source for p in predictions] == [
        {"restaurant_avg_delivery_time": "online", "driver_avg_delivery_time": "online"},
        {"restaurant_avg_delivery_time": "default", "driver_avg_delivery_time": "default"},
        {"restaurant_avg_delivery_time": "online", "driver_avg_delivery_time": "request"},
    ]
    # The same numbers as the model called directly on rows joined by hand, in input order.
    tables, defaults = artifact.entities.tables, artifact.entities.defaults
    rows = np.array(
        [
            [3.2, 1, 25.0, tables["restaurant_avg_delivery_time"]["r_0001"],
             tables["driver_avg_delivery_time"]["d_0002"]],
            [3.2, 1, 25.0, defaults["restaurant_avg_delivery_time"],
             defaults["driver_avg_delivery_time"]],
            [3.2, 1, 25.0, tables["restaurant_avg_delivery_time"]["r_0001"], 55.0],
        ]
    )  # fmt: skip
    expected = artifact.model.predict_rows(rows)
    got = np.array(
        [
            [p.predicted_delivery_time_min, p.confidence_interval_lower,
             p.confidence_interval_upper]
            for p in predictions
        ]
    )  # fmt: skip
    np.testing.assert_allclose(got, expected, rtol=1e-9)
    assert all(p.model_version == artifact.tag for p in predictions)
    assert len({p.prediction_id for p in predictions}) == 3
    # One model call for the whole request, and the request's log line is annotated.
    assert batches == [(1, 3)]
    assert request.fields["rows"] == 3
    assert request.fields["features_source"] == {"online": 3, "default": 2, "request": 1}


async def test_concurrent_requests_share_model_calls(
    pipeline: PredictionPipeline, batches: list[tuple[int, int]]
) -> None:
    answers = await asyncio.gather(*(pipeline.predict([_order(KNOWN)]) for _ in range(64)))
    assert all(len(a) == 1 for a in answers)
    assert sum(rows for _, rows in batches) == 64
    assert len(batches) < 64, "concurrent single-row requests must be merged"


async def test_out_of_range_outputs_are_clamped_and_counted(
    artifact: ModelArtifact, tmp_path: Path
) -> None:
    settings = _settings(tmp_path, prediction_floor_min=1.0, prediction_ceiling_min=2.0)
    pipeline = await _pipeline(settings, artifact)
    before = _sample(
        "delivery_eta_predictions_clamped_total", model_version=artifact.tag, bound="upper"
    )
    try:
        predictions = (await pipeline.predict([_order(KNOWN), _order(UNKNOWN)])).predictions()
    finally:
        await _close(pipeline)
    assert [p.predicted_delivery_time_min for p in predictions] == [2.0, 2.0]
    assert all(p.confidence_interval_upper <= 2.0 for p in predictions)
    after = _sample(
        "delivery_eta_predictions_clamped_total", model_version=artifact.tag, bound="upper"
    )
    assert after - before == 2


async def test_predictions_are_logged_and_join_their_delayed_labels(
    pipeline: PredictionPipeline, artifact: ModelArtifact
) -> None:
    (prediction,) = (await pipeline.predict([_order(KNOWN)])).predictions()
    before = _sample("delivery_eta_feedback_total", model_version=artifact.tag, result="joined")

    joined = await pipeline.feedback(prediction.prediction_id, 31.0)
    assert joined.status == "joined" and joined.record is not None
    assert joined.record.predicted == pytest.approx(prediction.predicted_delivery_time_min)
    assert joined.record.features[:3] == [3.2, 1.0, 25.0]
    assert len(joined.record.features) == len(artifact.contract.feature_names)
    assert (await pipeline.feedback(prediction.prediction_id, 31.0)).status == "duplicate"
    # The outcomes a client cannot get a receipt for are domain errors (service.py maps them).
    with pytest.raises(AlreadyLabelled, match=r"already has actual_delivery_time_min 31\.0"):
        await pipeline.feedback(prediction.prediction_id, 40.0)
    with pytest.raises(UnknownPrediction, match="expired or never made"):
        await pipeline.feedback("00000000-0000-4000-8000-000000000000", 31.0)
    conflicts = _sample(
        "delivery_eta_feedback_total", model_version=artifact.tag, result="conflict"
    )
    assert conflicts >= 1, "a refused label is still counted"
    after = _sample("delivery_eta_feedback_total", model_version=artifact.tag, result="joined")
    assert after - before == 1


async def test_drift_is_scored_once_enough_rows_arrived(
    pipeline: PredictionPipeline, artifact: ModelArtifact
) -> None:
    # Every order 40 km away: distance drifts far from training, order value does not move.
    far = [
        Order(distance_km=40.0, is_peak_hour=i % 2, order_value=20.0 + i % 30, **KNOWN)
        for i in range(DRIFT_SCORE_EVERY_ROWS)
    ]
    await pipeline.predict(far)
    distance = _sample(
        "delivery_eta_feature_psi", feature="distance_km", model_version=artifact.tag
    )
    assert distance > 1.0
    assert _sample("delivery_eta_prediction_psi", model_version=artifact.tag) > 0


async def test_a_failing_feature_store_serves_defaults_and_counts_the_fallback(
    artifact: ModelArtifact, tmp_path: Path
) -> None:
    nothing_listens = f"redis://127.0.0.1:{free_port()}/0"
    settings = _settings(
        tmp_path,
        feature_store=FeatureStoreSettings(backend="redis", timeout_ms=200),
        redis_url=nothing_listens,
    )
    pipeline = await _pipeline(settings, artifact)
    before = _sample("delivery_eta_feature_store_fallbacks_total", backend="redis")
    try:
        with request_scope("r2", "/v1/predict") as request:
            (prediction,) = (await pipeline.predict([_order(KNOWN)])).predictions()
    finally:
        await _close(pipeline)
    assert set(prediction.features_source.values()) == {"default"}
    assert request.fields["feature_store"] == "failed"
    assert _sample("delivery_eta_feature_store_fallbacks_total", backend="redis") - before == 1


async def test_a_batch_serialises_to_the_batch_prediction_document(
    pipeline: PredictionPipeline, artifact: ModelArtifact
) -> None:
    batch = await pipeline.predict([_order(KNOWN), _order(UNKNOWN), _order(KNOWN)])
    document = BatchPrediction.model_validate_json(batch.batch_json())
    assert document.model_version == artifact.tag
    assert document.predictions == batch.predictions()
    assert [p.prediction_id for p in document.predictions] == batch.prediction_ids.tolist()


async def test_a_label_sent_at_once_finds_the_challengers_answer_waiting_in_the_shadow(
    artifact: ModelArtifact, tmp_path: Path
) -> None:
    # The same model as its own challenger (an A/A check): the two answers must agree.
    settings = _settings(
        tmp_path, shadow=ShadowSettings(model_tag=artifact.tag, interval_ms=10_000)
    )
    store = build_feature_store(settings, artifact)
    built = build_pipeline(
        settings, artifact, store, build_metrics(artifact, store, artifact), challenger=artifact
    )
    try:
        (prediction,) = (await built.predict([_order(KNOWN)])).predictions()
        assert built.shadow is not None and built.shadow.queue_rows == 1  # not scored yet
        joined = await built.feedback(prediction.prediction_id, 31.0)
        assert joined.status == "joined" and joined.record is not None
        assert joined.record.shadow is not None and joined.record.entity_known is True
        assert joined.record.shadow.predicted == pytest.approx(
            prediction.predicted_delivery_time_min
        )
        for role in ("champion", "challenger"):
            labels = {"model_version": artifact.tag, "role": role, "cohort": "entity_known"}
            assert _sample("delivery_eta_cohort_online_absolute_error_minutes_count", **labels) >= 1
    finally:
        await built.close_shadow()
        await _close(built)


def test_default_is_the_highest_source_code() -> None:
    # The pipeline tells known entities by every code being below DEFAULT_SOURCE_CODE.
    assert len(FEATURE_SOURCES) - 1 == DEFAULT_SOURCE_CODE


def _as_columns(orders: list[Any]) -> OrderColumns:
    names = [*Order.model_fields]
    values = {name: [getattr(o, name) for o in orders] for name in names}
    columns: dict[str, Any] = {}
    for name, column in values.items():
        if isinstance(column[0], str):
            columns[name] = column
        else:  # overrides: NaN where not given
            columns[name] = np.array([np.nan if v is None else v for v in column], dtype=float)
    return OrderColumns(len(orders), columns)


async def test_columns_predict_like_rows_and_share_their_model_calls(
    pipeline: PredictionPipeline, batches: list[tuple[int, int]]
) -> None:
    orders = [_order(KNOWN), _order(UNKNOWN), _order(KNOWN, driver_avg_delivery_time=55.0)]
    rows = await pipeline.predict(orders)
    columns = await pipeline.predict_columns(_as_columns(orders))
    np.testing.assert_array_equal(columns.outputs, rows.outputs)
    np.testing.assert_array_equal(columns.source_codes, rows.source_codes)
    batches.clear()
    singles = [pipeline.predict([_order(KNOWN)]) for _ in range(32)]
    singles += [pipeline.predict_columns(_as_columns([_order(KNOWN)])) for _ in range(32)]
    answers = await asyncio.gather(*singles)
    assert len({tuple(a.outputs[0]) for a in answers}) == 1
    assert sum(rows for _, rows in batches) == 64 and len(batches) < 64


async def test_a_challenger_with_its_own_input_gets_the_columns_as_rows(
    pipeline: PredictionPipeline,
) -> None:
    class OwnInputShadow:
        builds_own_input = True
        submitted: list[Any] = []

        def submit(self, block: Any, entity_known: Any, orders: Any) -> None:
            self.submitted.append(orders)

    shadow = OwnInputShadow()
    pipeline.shadow = shadow  # type: ignore[assignment]
    try:
        orders = [_order(KNOWN), _order(UNKNOWN, restaurant_avg_delivery_time=12.0)]
        await pipeline.predict_columns(_as_columns(orders))
    finally:
        pipeline.shadow = None
    (rows,) = shadow.submitted
    assert [{n: getattr(r, n) for n in Order.model_fields} for r in rows] == [
        o.model_dump() for o in orders
    ]
