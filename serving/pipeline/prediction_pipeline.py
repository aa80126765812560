"""The request pipeline without HTTP: feature lookup -> assembly -> batched model -> clamp ->
response, plus the recording of predictions (log, metrics, drift) and the joining of their
delayed labels."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from pydantic_core import to_json

from models.cohorts import cohort_codes
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
    ModelCall,
    PredictionBlock,
    PredictionLog,
    encode_entity_ids,
    new_prediction_ids,
)
from serving.pipeline.prediction_log.records import DEFAULT_SOURCE_CODE
from serving.pipeline.shadow import ShadowScorer
from serving.schema import Order, Prediction
from serving.telemetry.drift_monitor import DriftMonitor
from serving.telemetry.metrics import CHAMPION, MetricsRecorder

# Drift is re-scored after this many new rows: often enough for alerts, cheap per request.
DRIFT_SCORE_EVERY_ROWS = 200
COHORT_DRIFT_EVERY_S = 5.0
"""Cohort drift (``models.cohorts.cohort_drift``) is re-scored at most this often per worker;
Prometheus scrapes every 15 s."""


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
        shadow: Callable[[Callable[[PredictionBlock], None]], ShadowScorer] | None = None,
    ) -> None:
        """``shadow(sink)``, when given, builds the challenger's scorer around ``sink`` (where
        its blocks go: the prediction log)."""
        self.model_version = model_version
        self.feature_store = feature_store
        self.prediction_log = prediction_log
        self.shadow = None if shadow is None else shadow(self._log_block)
        self._batcher = batcher
        self._defaults = defaults
        self._bounds = bounds
        self._drift = drift
        self._rows_since_drift = 0
        self._cohort_drift_at = -float("inf")
        self._metrics = metrics
        batcher.after_call = self._after_model_call

    def close(self) -> None:
        """Stop the batcher."""
        self._batcher.shutdown()

    async def close_shadow(self) -> None:
        """Score what waits for the challenger and log it (before the log closes)."""
        if self.shadow is not None:
            await self.shadow.close()

    @property
    def overloaded(self) -> bool:
        """Whether the champion's batcher is behind (``AdaptiveBatcher.overloaded``)."""
        return self._batcher.overloaded

    def _log_block(self, block: PredictionBlock) -> None:
        if self.prediction_log is not None:
            self.prediction_log.append(block)

    async def predict(self, orders: Sequence[Order]) -> PredictionBatch:
        """Predict every order; all rows of one call go to the model in the same batch."""
        started = time.perf_counter()
        restaurant_ids = [o.restaurant_id for o in orders]
        driver_ids = [o.driver_id for o in orders]
        online = await self.feature_store.lookup(restaurant_ids, driver_ids)
        looked_up = time.perf_counter()
        features, source_codes = assemble_feature_columns(orders, online, self._defaults)
        # Known: no entity feature fell back to the default, the highest source code (a test
        # in tests/serving/pipeline/test_prediction_pipeline.py holds that order).
        entity_known = source_codes.max(axis=1) < DEFAULT_SOURCE_CODE
        # The cohort tag rides with the rows to the model call's observers (_after_model_call).
        scored = await self._batcher.predict(features, entity_known[:, None])
        outputs = scored.outputs  # clamped, counted
        latency_ms = round((time.perf_counter() - started) * 1000.0, 3)
        block_key, ids = new_prediction_ids(len(orders))

        if self._metrics is not None:
            self._metrics.feature_lookup(looked_up - started, online.failed, source_codes)
        if self.prediction_log is not None or self.shadow is not None:
            block = PredictionBlock(
                block_key,
                time.time(),
                self.model_version,
                features,
                outputs,
                # The ids too: features hold the entities' averages, retraining needs the ids.
                encode_entity_ids(restaurant_ids, driver_ids),
                feature_sources=source_codes,
                call=ModelCall(round(scored.call_seconds * 1000, 4), scored.call_rows),
            )
            if self.shadow is not None:
                self.shadow.submit(block, entity_known)  # logs it, after the challenger if any
            else:
                self._log_block(block)
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
        if self.shadow is not None:
            # This worker's own predictions waiting for the challenger must be findable too.
            await self.shadow.flush()
        result = await self.prediction_log.attach_feedback(prediction_id, actual_minutes)
        if self._metrics is not None:
            self._metrics.feedback(result)
        annotate(
            feedback=result.status,
            model_version=result.record.model_version if result.record else None,
        )
        return result

    def _after_model_call(
        self, features: np.ndarray, tags: np.ndarray, outputs: np.ndarray, seconds: float
    ) -> np.ndarray:
        """Clamp one model call's outputs, observe them and the call (metrics, drift); the
        batcher runs this once per call on the merged batch of every request in it."""
        outputs, clamped = self._clamp(outputs)
        cohorts = cohort_codes(features, tags[:, 0] > 0.5)
        if self._metrics is not None:
            self._metrics.model_call(CHAMPION, seconds, len(features))
            self._metrics.predictions(outputs, cohorts, clamped)
        self._observe_drift(features, outputs[:, 0], cohorts)
        return outputs

    def clamp(self, outputs: np.ndarray) -> np.ndarray:
        """``outputs`` moved onto the plausible bounds (the challenger's too, uncounted)."""
        return self._clamp(outputs)[0]

    def _clamp(self, outputs: np.ndarray) -> tuple[np.ndarray, dict[str, int]]:
        low, high = self._bounds.floor_min, self._bounds.ceiling_min
        clamped = {
            "lower": int(np.sum(outputs[:, 0] < low)),
            "upper": int(np.sum(outputs[:, 0] > high)),
        }
        if clamped["lower"] or clamped["upper"]:
            outputs = np.clip(outputs, low, high)
        return outputs, clamped

    def _observe_drift(self, features: np.ndarray, points: np.ndarray, cohorts: np.ndarray) -> None:
        if self._drift is None:
            return
        self._drift.observe(features, points, cohorts)
        self._rows_since_drift += len(points)
        if self._rows_since_drift >= DRIFT_SCORE_EVERY_ROWS:
            self._rows_since_drift = 0
            scores = self._drift.scores()
            if scores is not None and self._metrics is not None:
                # Cohort PSIs move slowly and cost ~0.5 ms (8 cohorts over the window): at most
                # once per COHORT_DRIFT_EVERY_S, not on every 1000-row request.
                now = time.monotonic()
                cohort_psi: tuple[dict[str, float], dict[str, float]] = ({}, {})
                if now - self._cohort_drift_at >= COHORT_DRIFT_EVERY_S:
                    self._cohort_drift_at = now
                    cohort_psi = self._drift.cohort_scores()
                self._metrics.drift(scores, *cohort_psi)


def _source_summary(source_codes: np.ndarray) -> dict[str, int]:
    """How many entity features came from each source (for the request log line)."""
    counts = source_counts(source_codes.ravel())
    return {source: n for source, n in zip(FEATURE_SOURCES, counts, strict=True) if n}
