"""The request pipeline without HTTP: feature lookup -> assembly -> batched model (clamped and
observed once per call: ``serving.pipeline.model_calls``) -> response, then the answered block
to the shadow or the prediction log; and the joining of delayed labels.

What a request cannot get is raised as a domain error (:class:`serving.pipeline.batching.
Overloaded`, ``PredictionLogUnavailable``, :class:`UnknownPrediction`, :class:`AlreadyLabelled`);
the HTTP layer maps each to its status in one table (``service.py``)."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic_core import to_json

from models.features import (
    DEFAULT_SOURCE_CODE,
    FEATURE_SOURCES,
    FeatureAssembler,
    FeatureSource,
    OnlineValues,
    OrderColumns,
    source_counts,
)
from prediction_log import (
    FeedbackResult,
    ModelCall,
    PredictionBlock,
    PredictionIds,
    PredictionLog,
    encode_entity_ids,
    new_block_key,
)
from serving.pipeline.batching import AdaptiveBatcher
from serving.pipeline.feature_store import FeatureStore
from serving.pipeline.shadow import ShadowScorer
from serving.schema import Prediction
from serving.telemetry.metrics import MetricsRecorder
from serving.telemetry.request_notes import annotate

MAX_PRECOMPUTED_SOURCE_MAPS = 729
"""``features_source`` mappings built once, up front: every combination of sources for up to
six entity features (3**6); with more, each row's mapping is built when answered."""


class UnknownPrediction(LookupError):
    """Feedback for a prediction id the log does not hold (expired, or never made)."""

    def __init__(self, prediction_id: str) -> None:
        super().__init__(f"unknown prediction_id {prediction_id} (expired or never made)")


class AlreadyLabelled(ValueError):
    """Feedback for a prediction that already holds another actual value."""

    def __init__(self, prediction_id: str, actual: float | None) -> None:
        super().__init__(
            f"prediction_id {prediction_id} already has actual_delivery_time_min {actual}"
        )


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
    prediction_ids: PredictionIds
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

    One per worker; the model itself sits behind ``batcher`` (see ``serving.pipeline.batching``),
    which clamps and observes each call before the answers come back here.
    """

    def __init__(
        self,
        *,
        model_version: str,
        feature_store: FeatureStore,
        batcher: AdaptiveBatcher,
        assembler: FeatureAssembler,
        defaults: dict[str, float],
        prediction_log: PredictionLog | None = None,
        metrics: MetricsRecorder | None = None,
        shadow: ShadowScorer | None = None,
    ) -> None:
        """``assembler`` builds the model input of the served contract; ``shadow``, when given,
        gets every answered block first (and hands it on to the prediction log itself)."""
        self.model_version = model_version
        self.feature_store = feature_store
        self.prediction_log = prediction_log
        self.shadow = shadow
        self._batcher = batcher
        self._assembler = assembler
        self._sources = source_maps(assembler.contract.entity_features)
        self._defaults = defaults
        self._metrics = metrics

    def close(self) -> None:
        """Stop the batcher."""
        self._batcher.shutdown()

    async def close_shadow(self) -> None:
        """Score what waits for the challenger and log it (before the log closes)."""
        if self.shadow is not None:
            await self.shadow.close()

    async def predict(self, orders: Sequence[Any]) -> PredictionBatch:
        """Predict every order (validated request models of the served contract); all rows of
        one call go to the model in the same batch. Raises ``Overloaded`` when shed."""
        assembler = self._assembler
        return await self._predict(
            len(orders),
            assembler.entity_ids(orders),
            lambda online: assembler.assemble(orders, online, self._defaults),
            lambda: orders,
        )

    async def predict_columns(self, orders: OrderColumns) -> PredictionBatch:
        """:meth:`predict` of validated columnar orders (the v2 protocol's): assembled column by
        column, then the same model batches, log, metrics and shadow as rows."""
        assembler = self._assembler
        return await self._predict(
            orders.rows,
            assembler.column_entity_ids(orders),
            lambda online: assembler.assemble_columns(orders, online, self._defaults),
            # Rows only for a challenger that builds its own input from them (rare).
            lambda: assembler.rows_of(orders),
        )

    async def _predict(
        self,
        rows: int,
        entity_ids: dict[str, list[str]],
        assemble: Callable[[OnlineValues], tuple[np.ndarray, np.ndarray]],
        orders: Callable[[], Sequence[Any]],
    ) -> PredictionBatch:
        started = time.perf_counter()
        online = await self.feature_store.lookup(entity_ids)
        looked_up = time.perf_counter()
        features, source_codes = assemble(online)
        # Known: no entity feature fell back to the default, the highest source code (a test
        # in tests/serving/pipeline/test_prediction_pipeline.py holds that order). The flag
        # rides with the rows to the call's observer: it is the entity cohort.
        entity_known = np.asarray((source_codes < DEFAULT_SOURCE_CODE).all(axis=1))
        scored = await self._batcher.predict(features, entity_known)
        outputs = scored.outputs  # clamped, counted
        latency_ms = round((time.perf_counter() - started) * 1000.0, 3)
        block_key = new_block_key(rows)

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
                # The shadow logs it, after the challenger if any (which may build its own input
                # from the orders: another contract, other entity tables).
                kept = orders() if self.shadow.builds_own_input else ()
                self.shadow.submit(block, entity_known, kept)
            elif self.prediction_log is not None:
                self.prediction_log.append(block)
        annotate(
            model_version=self.model_version,
            rows=rows,
            features_source=_source_summary(source_codes),
            **({"feature_store": "failed"} if online.failed else {}),
        )
        return PredictionBatch(
            self.model_version,
            PredictionIds(block_key, rows),
            outputs,
            source_codes,
            latency_ms,
            self._sources,
        )

    async def feedback(self, prediction_id: str, actual_minutes: float) -> FeedbackResult:
        """Join an actual delivery time to its prediction (idempotent): a result whose
        ``record`` is set, or :class:`UnknownPrediction`, :class:`AlreadyLabelled`, or
        ``PredictionLogUnavailable`` (the store failed: retry later)."""
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
        if result.record is None:
            raise UnknownPrediction(prediction_id)
        if result.status == "conflict":
            raise AlreadyLabelled(prediction_id, result.actual)
        return result


def _source_summary(source_codes: np.ndarray) -> dict[str, int]:
    """How many entity features came from each source (for the request log line)."""
    if source_codes.size <= 16:  # a few rows: list counts beat numpy's per-call overhead
        codes = source_codes.ravel().tolist()
        return {source: n for i, source in enumerate(FEATURE_SOURCES) if (n := codes.count(i))}
    counts = source_counts(source_codes.ravel())
    return {source: n for source, n in zip(FEATURE_SOURCES, counts, strict=True) if n}
