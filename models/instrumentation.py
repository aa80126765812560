"""Records what the prediction path does into the metrics of ``models.metrics``."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np

from models import metrics
from models.prediction_log import FeedbackResult
from models.schema import ENTITY_FEATURES, FeatureSource


class Instrumentation:
    """Metric updates for one served model version (label children resolved once)."""

    def __init__(self, model_version: str, backend: str) -> None:
        self.model_version = model_version
        self._predicted = metrics.PREDICTED_MINUTES.labels(model_version=model_version)
        self._width = metrics.INTERVAL_WIDTH.labels(model_version=model_version)
        self._store_latency = metrics.FEATURE_STORE_LATENCY.labels(backend=backend)
        self._store_fallbacks = metrics.FEATURE_STORE_FALLBACKS.labels(backend=backend)
        # labels() costs a lock and a dict lookup per call: resolve the few children once
        # (it showed up at ~4 % of a worker's time under load).
        self._lookups = {
            (feature, source): metrics.FEATURE_LOOKUPS.labels(feature=feature, source=source)
            for feature in ENTITY_FEATURES
            for source in ("request", "online", "default")
        }

    def model_loaded(self, stage: str, trained_at: str, training_mae: float) -> None:
        """Publish which model is served and its training-time MAE."""
        metrics.MODEL_INFO.labels(
            model_version=self.model_version, stage=stage, trained_at=trained_at
        ).set(1)
        metrics.TRAINING_MAE.labels(model_version=self.model_version).set(training_mae)

    def predictions(self, outputs: np.ndarray, clamped: Mapping[str, int]) -> None:
        """Predicted minutes and interval widths of one request; clamped counts by bound."""
        for point, lower, upper in outputs.tolist():
            self._predicted.observe(point)
            self._width.observe(upper - lower)
        for bound, count in clamped.items():
            if count:
                metrics.PREDICTIONS_CLAMPED.labels(
                    model_version=self.model_version, bound=bound
                ).inc(count)

    def feature_lookup(
        self, seconds: float, failed: bool, sources: Sequence[Mapping[str, FeatureSource]]
    ) -> None:
        """One store lookup's duration and outcome, and where each entity feature came from."""
        self._store_latency.observe(seconds)
        if failed:
            self._store_fallbacks.inc()
        counts = Counter((name, source) for row in sources for name, source in row.items())
        for key, count in counts.items():
            self._lookups[key].inc(count)

    def drift(self, scores: Mapping[str, float]) -> None:
        """Latest PSI per feature and for the prediction."""
        for name, value in scores.items():
            if name == "predicted_delivery_time_min":
                metrics.PREDICTION_PSI.labels(model_version=self.model_version).set(value)
            else:
                metrics.FEATURE_PSI.labels(feature=name, model_version=self.model_version).set(
                    value
                )

    def feedback(self, result: FeedbackResult) -> None:
        """Count feedback; a first label also feeds the online error and coverage metrics."""
        version = result.record.model_version if result.record else self.model_version
        metrics.FEEDBACK.labels(model_version=version, result=result.status).inc()
        if result.status == "joined" and result.record is not None and result.actual is not None:
            record, actual = result.record, result.actual
            metrics.ONLINE_ABS_ERROR.labels(model_version=version).observe(
                abs(actual - record.predicted)
            )
            covered = "true" if record.lower <= actual <= record.upper else "false"
            metrics.INTERVAL_HITS.labels(model_version=version, covered=covered).inc()

    def request_finished(
        self, route: str, category: str | None, invalid_fields: Sequence[str] = ()
    ) -> None:
        """Errors by category, and invalid fields, of one finished /v1 request."""
        if category is not None:
            metrics.ERRORS.labels(route=route, category=category).inc()
        for name in set(invalid_fields):
            metrics.VALIDATION_ERRORS.labels(route=route, field=name).inc()
