"""The request pipeline without HTTP: feature lookup -> assembly -> batched model -> clamp ->
response, plus the recording of predictions (log, metrics, drift) and the joining of their
delayed labels."""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from models.features import assemble_features
from serving.middleware.request_context import annotate
from serving.pipeline.batching import AdaptiveBatcher
from serving.pipeline.feature_store import FeatureStore
from serving.pipeline.prediction_log import FeedbackResult, PredictionLog, PredictionRecord
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

    def close(self) -> None:
        """Stop the batcher."""
        self._batcher.shutdown()

    async def predict(self, orders: Sequence[Order]) -> list[Prediction]:
        """Predict every order; all rows of one call go to the model in the same batch."""
        started = time.perf_counter()
        online = await self.feature_store.lookup(
            [o.restaurant_id for o in orders], [o.driver_id for o in orders]
        )
        looked_up = time.perf_counter()
        features, sources = assemble_features(orders, online, self._defaults)
        outputs = await self._batcher.predict(features)
        outputs, clamped = self._clamp(outputs)
        latency_ms = round((time.perf_counter() - started) * 1000.0, 3)
        ids = [str(uuid.uuid4()) for _ in orders]

        if self._metrics is not None:
            self._metrics.feature_lookup(looked_up - started, online.failed, sources)
            self._metrics.predictions(outputs, clamped)
        self._observe_drift(features, outputs[:, 0])
        if self.prediction_log is not None:
            now = time.time()
            self.prediction_log.append(
                [
                    PredictionRecord(pid, now, self.model_version, row, point, lower, upper)
                    for pid, row, (point, lower, upper) in zip(
                        ids, features.tolist(), outputs.tolist(), strict=True
                    )
                ]
            )
        annotate(
            model_version=self.model_version,
            rows=len(orders),
            features_source=_source_summary(sources),
            **({"feature_store": "failed"} if online.failed else {}),
        )
        # model_construct: every field is produced here from typed values; re-validating
        # thousands of rows per batch would only cost time.
        return [
            Prediction.model_construct(
                predicted_delivery_time_min=point,
                confidence_interval_lower=lower,
                confidence_interval_upper=upper,
                model_version=self.model_version,
                prediction_id=pid,
                latency_ms=latency_ms,
                features_source=row_sources,
            )
            for pid, (point, lower, upper), row_sources in zip(
                ids, outputs.tolist(), sources, strict=True
            )
        ]

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


def _source_summary(sources: Sequence[Mapping[str, str]]) -> dict[str, int]:
    """How many entity features came from each source (for the request log line)."""
    summary: dict[str, int] = {}
    for row in sources:
        for source in row.values():
            summary[source] = summary.get(source, 0) + 1
    return summary
