"""The request pipeline without HTTP: feature lookup -> assembly -> batched model -> clamp ->
response, plus the recording of predictions (log, metrics, drift) and the joining of their
delayed labels."""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pydantic_core import to_json

from models.features import (
    ENTITY_FEATURES,
    FEATURE_SOURCES,
    FeatureSource,
    assemble_feature_columns,
    source_counts,
)
from serving.middleware.request_context import annotate
from serving.pipeline.batching import AdaptiveBatcher
from serving.pipeline.feature_store import FeatureStore
from serving.pipeline.prediction_log import (
    FeedbackResult,
    PredictionBlock,
    PredictionLog,
    encode_entity_ids,
    new_prediction_ids,
)
from serving.schema import Order, Prediction
from serving.telemetry.drift_monitor import DriftMonitor
from serving.telemetry.metrics import MetricsRecorder

# Drift is re-scored after this many new rows: often enough for alerts, cheap per request.
DRIFT_SCORE_EVERY_ROWS = 200


@dataclass(frozen=True)
class Bounds:
    """Plausible range of a delivery time; model output outside it is clamped (and counted)."""

    floor_min: float
    ceiling_min: float


# The features_source mapping of every combination of source codes (9), built once and shared
# by every row with that combination.
_SOURCE_MAPS: dict[tuple[int, ...], dict[str, FeatureSource]] = {
    codes: dict(zip(ENTITY_FEATURES, (FEATURE_SOURCES[c] for c in codes), strict=True))
    for codes in itertools.product(range(len(FEATURE_SOURCES)), repeat=len(ENTITY_FEATURES))
}


@dataclass(frozen=True)
class PredictionBatch:
    """The answers to one request, column by column, in input order."""

    model_version: str
    prediction_ids: list[str]
    outputs: np.ndarray
    """(n, 3): point, lower, upper (after clamping)."""
    source_codes: np.ndarray
    """(n, len(ENTITY_FEATURES)): index into ``FEATURE_SOURCES`` per entity feature."""
    latency_ms: float

    def __len__(self) -> int:
        return len(self.prediction_ids)

    def _rows(self) -> list[dict[str, object]]:
        return [
            {
                "predicted_delivery_time_min": point,
                "confidence_interval_lower": lower,
                "confidence_interval_upper": upper,
                "model_version": self.model_version,
                "prediction_id": pid,
                "latency_ms": self.latency_ms,
                "features_source": _SOURCE_MAPS[tuple(codes)],
            }
            for pid, (point, lower, upper), codes in zip(
                self.prediction_ids,
                self.outputs.tolist(),
                self.source_codes.tolist(),
                strict=True,
            )
        ]

    def predictions(self) -> list[Prediction]:
        """One :class:`Prediction` per order (the single-row API's answer); every field is
        built here from typed values, so validating them again would only cost time."""
        return [Prediction.model_construct(**row) for row in self._rows()]  # type: ignore[arg-type]

    def batch_json(self) -> bytes:
        """The ``BatchPrediction`` document as JSON, serialised in one call.

        For 1000 rows, building 1000 pydantic models and letting BentoML dump them cost more
        than the model call; plain rows through pydantic-core's serialiser give the same bytes.
        """
        return to_json({"predictions": self._rows(), "model_version": self.model_version})


class PredictionPipeline:
    """Turns validated orders into :class:`Prediction` objects, in input order.

    One per worker; the model itself sits behind ``batcher`` (see ``serving.pipeline.batching``).
    """

    def __init__(
        self,
        *,
        model_version: str,
        feature_store: FeatureStore,
        batcher: AdaptiveBatcher,
        defaults: dict[str, float],
        bounds: Bounds,
        prediction_log: PredictionLog | None = None,
        drift: DriftMonitor | None = None,
        metrics: MetricsRecorder | None = None,
    ) -> None:
        self.model_version = model_version
        self.feature_store = feature_store
        self.prediction_log = prediction_log
        self._batcher = batcher
        self._defaults = defaults
        self._bounds = bounds
        self._drift = drift
        self._rows_since_drift = 0
        self._metrics = metrics
        batcher.after_call = self._after_model_call

    def close(self) -> None:
        """Stop the batcher."""
        self._batcher.shutdown()

    async def predict(self, orders: Sequence[Order]) -> PredictionBatch:
        """Predict every order; all rows of one call go to the model in the same batch."""
        started = time.perf_counter()
        restaurant_ids = [o.restaurant_id for o in orders]
        driver_ids = [o.driver_id for o in orders]
        online = await self.feature_store.lookup(restaurant_ids, driver_ids)
        looked_up = time.perf_counter()
        features, source_codes = assemble_feature_columns(orders, online, self._defaults)
        outputs = await self._batcher.predict(features)  # clamped, counted (_after_model_call)
        latency_ms = round((time.perf_counter() - started) * 1000.0, 3)
        block_key, ids = new_prediction_ids(len(orders))

        if self._metrics is not None:
            self._metrics.feature_lookup(looked_up - started, online.failed, source_codes)
        if self.prediction_log is not None:
            # The ids too: features hold the entities' averages, retraining needs the entities.
            entity_ids = encode_entity_ids(restaurant_ids, driver_ids)
            self.prediction_log.append(
                PredictionBlock(
                    block_key, time.time(), self.model_version, features, outputs, entity_ids
                )
            )
        annotate(
            model_version=self.model_version,
            rows=len(orders),
            features_source=_source_summary(source_codes),
            **({"feature_store": "failed"} if online.failed else {}),
        )
        return PredictionBatch(self.model_version, ids, outputs, source_codes, latency_ms)

    async def feedback(self, prediction_id: str, actual_minutes: float) -> FeedbackResult:
        """Join an actual delivery time to its prediction (idempotent)."""
        if self.prediction_log is None:
            raise RuntimeError("no prediction log configured")
        result = await self.prediction_log.attach_feedback(prediction_id, actual_minutes)
        if self._metrics is not None:
            self._metrics.feedback(result)
        annotate(
            feedback=result.status,
            model_version=result.record.model_version if result.record else None,
        )
        return result

    def _after_model_call(self, features: np.ndarray, outputs: np.ndarray) -> np.ndarray:
        """Clamp one model call's outputs, observe them (metrics, drift); the batcher runs this
        once per call on the merged batch of every request in it."""
        outputs, clamped = self._clamp(outputs)
        if self._metrics is not None:
            self._metrics.predictions(outputs, clamped)
        self._observe_drift(features, outputs[:, 0])
        return outputs

    def _clamp(self, outputs: np.ndarray) -> tuple[np.ndarray, dict[str, int]]:
        low, high = self._bounds.floor_min, self._bounds.ceiling_min
        clamped = {
            "lower": int(np.sum(outputs[:, 0] < low)),
            "upper": int(np.sum(outputs[:, 0] > high)),
        }
        if clamped["lower"] or clamped["upper"]:
            outputs = np.clip(outputs, low, high)
        return outputs, clamped

    def _observe_drift(self, features: np.ndarray, points: np.ndarray) -> None:
        if self._drift is None:
            return
        self._drift.observe(features, points)
        self._rows_since_drift += len(points)
        if self._rows_since_drift >= DRIFT_SCORE_EVERY_ROWS:
            self._rows_since_drift = 0
            scores = self._drift.scores()
            if scores is not None and self._metrics is not None:
                self._metrics.drift(scores)


def _source_summary(source_codes: np.ndarray) -> dict[str, int]:
    """How many entity features came from each source (for the request log line)."""
    counts = source_counts(source_codes.ravel())
    return {source: n for source, n in zip(FEATURE_SOURCES, counts, strict=True) if n}
