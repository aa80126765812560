"""The request pipeline without HTTP: feature lookup -> assembly -> batched model -> clamp ->
response, plus the recording of predictions (log, metrics, drift) and the joining of their
delayed labels."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic_core import to_json

from models.cohorts import Cohorts
from models.features import (
    DEFAULT_SOURCE_CODE,
    FEATURE_SOURCES,
    FeatureAssembler,
    FeatureSource,
    source_counts,
)
from prediction_log import (
    FeedbackResult,
    ModelCall,
    PredictionBlock,
    PredictionLog,
    encode_entity_ids,
    new_prediction_ids,
)
from serving.pipeline.batching import AdaptiveBatcher
from serving.pipeline.feature_store import FeatureStore
from serving.pipeline.shadow import ShadowScorer
from serving.schema import Prediction
from serving.server.middleware.request_context import annotate
from serving.telemetry.drift_monitor import DriftMonitor
from serving.telemetry.metrics import CHAMPION, MetricsRecorder

# Drift is re-scored after this many new rows: often enough for alerts, cheap per request.
DRIFT_SCORE_EVERY_ROWS = 200
COHORT_DRIFT_EVERY_S = 5.0
"""Cohort drift (``models.cohorts.Cohorts.drift``) is re-scored at most this often per worker;
Prometheus scrapes every 15 s."""
MAX_PRECOMPUTED_SOURCE_MAPS = 729
"""``features_source`` mappings built once, up front: every combination of sources for up to
six entity features (3**6); with more, each row's mapping is built when answered."""


@dataclass(frozen=True)
class Bounds:
    """Plausible range of a delivery time; model output outside it is clamped (and counted)."""

    floor_min: float
    ceiling_min: float


SourceMaps = Mapping[tuple[int, ...], dict[str, FeatureSource]]
"""A row's source codes (one per entity feature) -> its ``features_source`` mapping."""


class _SourceMapsBuiltPerRow(dict[tuple[int, ...], dict[str, FeatureSource]]):
    """Too many combinations to build up front: each missing one is built, not kept (a
    request must not grow what a worker holds)."""

    def __init__(self, entity_features: Sequence[str]) -> None:
        super().__init__()
        self._names = tuple(entity_features)

    def __missing__(self, codes: tuple[int, ...]) -> dict[str, FeatureSource]:
        return dict(zip(self._names, (FEATURE_SOURCES[c] for c in codes), strict=True))


def source_maps(entity_features: Sequence[str]) -> SourceMaps:
    """The ``features_source`` mapping of every combination of source codes, built once and
    shared by every row with that combination (9 for two entity features)."""
    combinations = len(FEATURE_SOURCES) ** len(entity_features)
    if combinations > MAX_PRECOMPUTED_SOURCE_MAPS:
        return _SourceMapsBuiltPerRow(entity_features)
    return {
        codes: dict(zip(entity_features, (FEATURE_SOURCES[c] for c in codes), strict=True))
        for codes in itertools.product(range(len(FEATURE_SOURCES)), repeat=len(entity_features))
    }


@dataclass(frozen=True)
class PredictionBatch:
    """The answers to one request, column by column, in input order."""

    model_version: str
    prediction_ids: list[str]
    outputs: np.ndarray
    """(n, 3): point, lower, upper (after clamping)."""
    source_codes: np.ndarray
    """(n, entity features): index into ``FEATURE_SOURCES`` per entity feature."""
    latency_ms: float
    sources: SourceMaps
    """:func:`source_maps` of the contract's entity features."""

    def __len__(self) -> int:
        return len(self.prediction_ids)

    def _rows(self) -> list[dict[str, object]]:
        sources = self.sources
        return [
            {
                "predicted_delivery_time_min": point,
                "confidence_interval_lower": lower,
                "confidence_interval_upper": upper,
                "model_version": self.model_version,
                "prediction_id": pid,
                "latency_ms": self.latency_ms,
                "features_source": sources[tuple(codes)],
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
        assembler: FeatureAssembler,
        defaults: dict[str, float],
        bounds: Bounds,
        prediction_log: PredictionLog | None = None,
        drift: DriftMonitor | None = None,
        metrics: MetricsRecorder | None = None,
        shadow: Callable[[Callable[[PredictionBlock], None]], ShadowScorer] | None = None,
    ) -> None:
        """``assembler`` builds the model input of the served contract (its cohorts slice the
        metrics and drift); ``shadow(sink)``, when given, builds the challenger's scorer around
        ``sink`` (where its blocks go: the prediction log)."""
        self.model_version = model_version
        self.feature_store = feature_store
        self.prediction_log = prediction_log
        self.shadow = None if shadow is None else shadow(self._log_block)
        self._batcher = batcher
        self._assembler = assembler
        self._cohorts = Cohorts(assembler.contract)
        self._sources = source_maps(assembler.contract.entity_features)
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

    async def predict(self, orders: Sequence[Any]) -> PredictionBatch:
        """Predict every order (validated request models of the served contract); all rows of
        one call go to the model in the same batch."""
        started = time.perf_counter()
        entity_ids = self._assembler.entity_ids(orders)
        online = await self.feature_store.lookup(entity_ids)
        looked_up = time.perf_counter()
        features, source_codes = self._assembler.assemble(orders, online, self._defaults)
        # Known: no entity feature fell back to the default, the highest source code (a test
        # in tests/serving/pipeline/test_prediction_pipeline.py holds that order).
        entity_known = np.asarray((source_codes < DEFAULT_SOURCE_CODE).all(axis=1))
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
                encode_entity_ids(list(entity_ids.values())),
                feature_sources=source_codes,
                call=ModelCall(round(scored.call_seconds * 1000, 4), scored.call_rows),
            )
            if self.shadow is not None:
                # Logs it, after the challenger if any (which may build its own input from the
                # orders: another contract, other entity tables).
                self.shadow.submit(block, entity_known, orders)
            else:
                self._log_block(block)
        annotate(
            model_version=self.model_version,
            rows=len(orders),
            features_source=_source_summary(source_codes),
            **({"feature_store": "failed"} if online.failed else {}),
        )
        return PredictionBatch(
            self.model_version, ids, outputs, source_codes, latency_ms, self._sources
        )

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
        cohorts = self._cohorts.codes(features, tags[:, 0] > 0.5)
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
                # Cohort PSIs move slowly and cost ~0.5 ms (8 cohorts by default): at most
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
