"""The service's Prometheus metrics (multi-worker safe through ``bentoml.metrics``), and
:class:`MetricsRecorder`, which is the only code that updates them.

Every name here is part of the monitoring contract used by deploy/monitoring (rules, alerts,
dashboard); renaming one breaks them. Label values that name a feature, a cohort or a request
field come from the served model's feature contract (``models.contract``), never from a
request: the series they make are bounded by the contract whatever the traffic.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal

import bentoml
import numpy as np

from framework_internals import observe_many, observe_total
from models.cohorts import Cohorts
from models.contract import FeatureContract
from models.features import FEATURE_SOURCES, source_counts
from prediction_log import FeedbackResult
from serving.telemetry.label_metrics import ERROR_MINUTES, observe_feedback, start_label_series
from serving.telemetry.labels import (
    NO_FIELDS,
    PROTOCOL_ROUTE_LABELS,
    ROUTE_LABELS,
    VALIDATION_CATEGORY,
    FieldLabels,
    route_label,
)
from serving.telemetry.roles import CHALLENGER, CHAMPION, Role

ShadowOutcome = Literal[
    "scored", "not_selected", "dropped_queue_full", "dropped_overload", "failed"
]
SHADOW_OUTCOMES: tuple[ShadowOutcome, ...] = (
    "scored",
    "not_selected",
    "dropped_queue_full",
    "dropped_overload",
    "failed",
)
"""What the shadow did with a predicted row (``delivery_eta_shadow_rows_total{outcome}``)."""

_MINUTES = [5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 60, 75, 90, 120, 180]
_ROWS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096]

# Same name and labels as the histogram BentoML keeps for its batchable APIs, so the usual
# BentoML dashboards show our batches: requests merged into one model call.
ADAPTIVE_BATCH_SIZE = bentoml.metrics.Histogram(
    name="bentoml_service_adaptive_batch_size",
    documentation="Requests merged into one model call by the adaptive batcher",
    labelnames=["runner_name", "worker_index", "method_name", "service_version", "service_name"],
    buckets=_ROWS[:11],
)
BATCH_ROWS = bentoml.metrics.Histogram(
    name="delivery_eta_model_batch_rows",
    documentation="Rows in one model call (all requests merged by the batcher)",
    labelnames=["model_version"],
    buckets=_ROWS,
)
PREDICTED_MINUTES = bentoml.metrics.Histogram(
    name="delivery_eta_predicted_delivery_time_minutes",
    documentation="Predicted delivery time, by model version and role (champion: what clients "
    "got; challenger: the shadow model's answer to the same rows)",
    labelnames=["model_version", "role"],
    buckets=_MINUTES,
)
INTERVAL_WIDTH = bentoml.metrics.Histogram(
    name="delivery_eta_interval_width_minutes",
    documentation="Width of the 90 % prediction interval, by model version and role",
    labelnames=["model_version", "role"],
    buckets=[2, 5, 8, 10, 12, 15, 18, 20, 25, 30, 40, 60],
)
PREDICTIONS_CLAMPED = bentoml.metrics.Counter(
    name="delivery_eta_predictions_clamped_total",
    documentation="Predictions moved onto the service's plausible bounds",
    labelnames=["model_version", "bound"],
)
VALIDATION_ERRORS = bentoml.metrics.Counter(
    name="delivery_eta_validation_errors_total",
    documentation="Invalid request fields (one count per field per request; unknown fields: other)",
    labelnames=["route", "field"],
)
ERRORS = bentoml.metrics.Counter(
    name="delivery_eta_errors_total",
    documentation="Failed /v1 requests by category; route: one of the API's, or unmatched",
    labelnames=["route", "category"],
)
FEATURE_LOOKUPS = bentoml.metrics.Counter(
    name="delivery_eta_feature_lookups_total",
    documentation="Entity feature values used, by where they came from",
    labelnames=["feature", "source"],
)
FEATURE_STORE_LATENCY = bentoml.metrics.Histogram(
    name="delivery_eta_feature_store_latency_seconds",
    documentation="Duration of one feature-store lookup",
    labelnames=["backend"],
    buckets=[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5],
)
FEATURE_STORE_FALLBACKS = bentoml.metrics.Counter(
    name="delivery_eta_feature_store_fallbacks_total",
    documentation="Lookups that failed or timed out and used default features",
    labelnames=["backend"],
)
# livemax: each worker scores its own window; alert when any live worker sees drift.
FEATURE_PSI = bentoml.metrics.Gauge(
    name="delivery_eta_feature_psi",
    documentation="PSI of recent requests' feature vs the training reference",
    labelnames=["feature", "model_version"],
    multiprocess_mode="livemax",
)
PREDICTION_PSI = bentoml.metrics.Gauge(
    name="delivery_eta_prediction_psi",
    documentation="PSI of recent predictions vs the training-time predictions",
    labelnames=["model_version"],
    multiprocess_mode="livemax",
)
MODEL_INFO = bentoml.metrics.Gauge(
    name="delivery_eta_model_info",
    documentation="The loaded models (value 1): role champion answers clients, role challenger "
    "scores the same rows in the shadow",
    labelnames=["model_version", "role", "stage", "trained_at"],
    multiprocess_mode="livemax",
)
TRAINING_MAE = bentoml.metrics.Gauge(
    name="delivery_eta_model_training_mae_minutes",
    documentation="Holdout MAE measured at training time",
    labelnames=["model_version"],
    multiprocess_mode="livemax",
)
# --- Shadow inference (serving/pipeline/shadow.py) and model cost -----------------------------
# Labels: role in ROLES; versions are the two loaded models'; outcome in SHADOW_OUTCOMES.

SHADOW_ABS_DIFFERENCE = bentoml.metrics.Histogram(
    name="delivery_eta_shadow_absolute_difference_minutes",
    documentation="|champion point - challenger point| per row the challenger scored",
    labelnames=["champion_version", "challenger_version"],
    buckets=ERROR_MINUTES,
)
MODEL_INFERENCE = bentoml.metrics.Histogram(
    name="delivery_eta_model_inference_seconds",
    documentation="Duration of one model call alone (in the model thread; request latency "
    "adds queueing, features, logging and HTTP)",
    labelnames=["model_version", "role"],
    buckets=[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
)
MODEL_INFERENCE_PER_ROW = bentoml.metrics.Histogram(
    name="delivery_eta_model_inference_row_seconds",
    documentation="One model call's duration divided by its rows",
    labelnames=["model_version", "role"],
    buckets=[1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 1e-2],
)
SHADOW_ROWS = bentoml.metrics.Counter(
    name="delivery_eta_shadow_rows_total",
    documentation="Predicted rows of a worker with a challenger, by what the shadow did with "
    "them (scored, not_selected, dropped_queue_full, dropped_overload, failed)",
    labelnames=["outcome"],
)
SHADOW_QUEUE_ROWS = bentoml.metrics.Gauge(
    name="delivery_eta_shadow_queue_rows",
    documentation="Rows waiting for the challenger (all live workers)",
    multiprocess_mode="livesum",
)

# --- Cohorts (models/cohorts.py: a set fixed by the contract, never a request's value) ---------

# A summary (count and sum: the mean per cohort), not a histogram: 8 cohorts x 9 bucket writes
# per model call measured ~0.3 ms per 1000-row call; the shape within a cohort is watched by
# delivery_eta_cohort_prediction_psi.
COHORT_PREDICTED_MINUTES = bentoml.metrics.Summary(
    name="delivery_eta_cohort_predicted_delivery_time_minutes",
    documentation="Predicted delivery time per cohort (count and sum), by model version and role",
    labelnames=["model_version", "role", "cohort"],
)
COHORT_PREDICTION_PSI = bentoml.metrics.Gauge(
    name="delivery_eta_cohort_prediction_psi",
    documentation="PSI of recent predictions in a cohort vs the training-time predictions in it",
    labelnames=["model_version", "cohort"],
    multiprocess_mode="livemax",
)
COHORT_MIX_PSI = bentoml.metrics.Gauge(
    name="delivery_eta_cohort_mix_psi",
    documentation="PSI of recent traffic's shares over a dimension's cohorts vs training",
    labelnames=["model_version", "dimension"],
    multiprocess_mode="livemax",
)


class MetricsRecorder:
    """Metric updates for the loaded model versions (label children resolved once).

    ``contract`` is the served model's: its entity aggregates are the ``feature`` label of the
    lookups, its cohorts the ``cohort`` label (the challenger's answers are sliced by the same
    cohorts of the same rows). ``field_labels`` are the served API's request fields.
    """

    def __init__(
        self,
        model_version: str,
        backend: str,
        challenger_version: str | None = None,
        *,
        contract: FeatureContract,
        field_labels: FieldLabels = NO_FIELDS,
    ) -> None:
        self.model_version = model_version
        self.challenger_version = challenger_version
        self._versions = {CHAMPION: model_version}
        if challenger_version is not None:
            self._versions[CHALLENGER] = challenger_version
        self.cohorts = Cohorts(contract)
        """The served contract's cohorts; prediction rows are coded with them."""
        start_label_series(self._versions, self.cohorts.names)
        # The validation-error ratio's numerator, at 0 from the start for the same reason
        # (label_metrics.start_label_series): rate() never saw a pod's first invalid request.
        for route in ROUTE_LABELS | {r for r in PROTOCOL_ROUTE_LABELS if r.endswith("/infer")}:
            ERRORS.labels(route=route, category=VALIDATION_CATEGORY)
        self.field_labels = field_labels
        self._entity_features = contract.entity_features
        # labels() costs a lock and a dict lookup per call: resolve the children once (it
        # showed up at ~4 % of a worker's time under load).
        self._predicted = self._by_role(PREDICTED_MINUTES)
        self._width = self._by_role(INTERVAL_WIDTH)
        self._inference = self._by_role(MODEL_INFERENCE)
        self._inference_row = self._by_role(MODEL_INFERENCE_PER_ROW)
        self._cohort_predicted = {
            role: [
                COHORT_PREDICTED_MINUTES.labels(model_version=version, role=role, cohort=cohort)
                for cohort in self.cohorts.names
            ]
            for role, version in self._versions.items()
        }
        self._store_latency = FEATURE_STORE_LATENCY.labels(backend=backend)
        self._store_fallbacks = FEATURE_STORE_FALLBACKS.labels(backend=backend)
        self._lookups = {
            (feature, source): FEATURE_LOOKUPS.labels(feature=feature, source=source)
            for feature in contract.entity_features
            for source in FEATURE_SOURCES
        }
        # Per entity feature, its counters indexed by source code.
        self._lookups_by_code = [
            [self._lookups[feature, source] for source in FEATURE_SOURCES]
            for feature in contract.entity_features
        ]
        self._shadow_rows = {
            outcome: SHADOW_ROWS.labels(outcome=outcome) for outcome in SHADOW_OUTCOMES
        }
        self._difference = (
            None
            if challenger_version is None
            else SHADOW_ABS_DIFFERENCE.labels(
                champion_version=model_version, challenger_version=challenger_version
            )
        )

    def _by_role(self, metric: Any) -> dict[str, Any]:
        return {
            role: metric.labels(model_version=version, role=role)
            for role, version in self._versions.items()
        }

    def model_loaded(
        self, stage: str, trained_at: str, training_mae: float, role: Role = "champion"
    ) -> None:
        """Publish a loaded model (``role``: champion, or the shadow's challenger) and its
        training-time MAE."""
        version = self._versions[role]
        MODEL_INFO.labels(model_version=version, role=role, stage=stage, trained_at=trained_at).set(
            1
        )
        TRAINING_MAE.labels(model_version=version).set(training_mae)

    def batch_observer(
        self, worker_index: int | None, service_name: str, service_version: str
    ) -> Callable[[int, int], None]:
        """``observe(requests, rows)`` of one model call, for this worker's batcher."""
        batch_size = ADAPTIVE_BATCH_SIZE.labels(
            runner_name="delivery_eta",
            worker_index=str(worker_index),
            method_name="predict_rows",
            service_version=service_version,
            service_name=service_name,
        )
        batch_rows = BATCH_ROWS.labels(model_version=self.model_version)

        def observe(requests: int, rows: int) -> None:
            batch_size.observe(requests)
            batch_rows.observe(rows)

        return observe

    def predictions(
        self,
        outputs: np.ndarray,
        cohorts: np.ndarray,
        clamped: Mapping[str, int] | None = None,
        role: Role = "champion",
    ) -> None:
        """Predicted minutes and interval widths of one model call's rows, overall and per
        cohort (``cohorts``: :attr:`cohorts`' codes of the rows); clamped counts by bound."""
        observe_many(self._predicted[role], outputs[:, 0])
        observe_many(self._width[role], outputs[:, 2] - outputs[:, 1])
        children = self._cohort_predicted[role]
        if len(outputs) == 1:  # one row: three observes beat numpy's per-call overhead
            point = float(outputs[0, 0])
            for code in cohorts[0].tolist():
                children[code].observe(point)
        else:
            # Every row is in one cohort per dimension: one count and one sum per cohort.
            counts = np.bincount(cohorts.ravel(), minlength=len(children)).tolist()
            totals = np.bincount(
                cohorts.ravel(), weights=np.repeat(outputs[:, 0], cohorts.shape[1])
            ).tolist()
            for code, count in enumerate(counts):
                if count:
                    observe_total(children[code], count, totals[code])
        for bound, count in (clamped or {}).items():
            if count:
                PREDICTIONS_CLAMPED.labels(model_version=self.model_version, bound=bound).inc(count)

    def model_call(self, role: Role, seconds: float, rows: int) -> None:
        """One model call's duration (the model alone) and its per-row share."""
        self._inference[role].observe(seconds)
        if rows:
            self._inference_row[role].observe(seconds / rows)

    def shadow_difference(self, champion_points: np.ndarray, challenger_points: np.ndarray) -> None:
        """|champion - challenger| of the rows the challenger scored."""
        if self._difference is not None:
            observe_many(self._difference, np.abs(champion_points - challenger_points))

    def shadow_rows(self, outcome: ShadowOutcome, rows: int) -> None:
        """``rows`` predicted rows reached ``outcome`` in the shadow."""
        if rows:
            self._shadow_rows[outcome].inc(rows)

    def shadow_queue_rows(self, rows: int) -> None:
        """Rows now waiting for the challenger in this worker."""
        SHADOW_QUEUE_ROWS.set(rows)

    def feature_lookup(self, seconds: float, failed: bool, source_codes: np.ndarray) -> None:
        """One store lookup's duration and outcome, and where each entity feature came from
        (``source_codes`` as ``FeatureAssembler.assemble`` returns them)."""
        self._store_latency.observe(seconds)
        if failed:
            self._store_fallbacks.inc()
        if len(source_codes) == 1:  # one row: one increment per feature beats numpy's calls
            for counters, code in zip(self._lookups_by_code, source_codes[0].tolist(), strict=True):
                counters[code].inc()
            return
        for column, name in enumerate(self._entity_features):
            counts = source_counts(source_codes[:, column])
            for source, count in zip(FEATURE_SOURCES, counts, strict=True):
                if count:
                    self._lookups[name, source].inc(count)

    def drift(
        self,
        scores: Mapping[str, float],
        cohort_psi: Mapping[str, float] | None = None,
        mix_psi: Mapping[str, float] | None = None,
    ) -> None:
        """Latest PSI per feature and for the prediction; per cohort and per dimension's mix
        (the names are the drift monitor's: the contract's features, cohorts, dimensions)."""
        for name, value in scores.items():
            if name == "predicted_delivery_time_min":
                PREDICTION_PSI.labels(model_version=self.model_version).set(value)
            else:
                FEATURE_PSI.labels(feature=name, model_version=self.model_version).set(value)
        for cohort, value in (cohort_psi or {}).items():
            COHORT_PREDICTION_PSI.labels(model_version=self.model_version, cohort=cohort).set(value)
        for dimension, value in (mix_psi or {}).items():
            COHORT_MIX_PSI.labels(model_version=self.model_version, dimension=dimension).set(value)

    def feedback(self, result: FeedbackResult) -> None:
        """Count one label (``serving.telemetry.label_metrics.observe_feedback``)."""
        observe_feedback(result, self.cohorts, self.model_version)

    def request_finished(
        self, route: str, category: str | None, invalid_fields: Iterable[str] = ()
    ) -> None:
        """Errors by category, and invalid fields, of one finished /v1 request.

        ``route`` is the request's path and ``invalid_fields`` its ``field`` labels
        (``labels.field_label``): both come from the client, so only the fixed label sets of
        ``serving.telemetry.labels`` reach the metrics, and one request updates each series
        at most once.
        """
        route = route_label(route)
        if category is not None:
            ERRORS.labels(route=route, category=category).inc()
        for name in {self.field_labels.known(name) for name in invalid_fields}:
            VALIDATION_ERRORS.labels(route=route, field=name).inc()
