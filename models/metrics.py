"""The service's Prometheus metrics (multi-worker safe through ``bentoml.metrics``).

Every name here is part of the monitoring contract used by deploy/monitoring (rules, alerts,
dashboard); renaming one breaks them.
"""

from __future__ import annotations

import bentoml

_MINUTES = [5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 60, 75, 90, 120, 180]
_ERROR_MINUTES = [0.5, 1, 2, 3, 4, 5, 6, 8, 10, 15, 20, 30, 60]
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
    documentation="Predicted delivery time",
    labelnames=["model_version"],
    buckets=_MINUTES,
)
INTERVAL_WIDTH = bentoml.metrics.Histogram(
    name="delivery_eta_interval_width_minutes",
    documentation="Width of the 90 % prediction interval",
    labelnames=["model_version"],
    buckets=[2, 5, 8, 10, 12, 15, 18, 20, 25, 30, 40, 60],
)
PREDICTIONS_CLAMPED = bentoml.metrics.Counter(
    name="delivery_eta_predictions_clamped_total",
    documentation="Predictions moved onto the service's plausible bounds",
    labelnames=["model_version", "bound"],
)
VALIDATION_ERRORS = bentoml.metrics.Counter(
    name="delivery_eta_validation_errors_total",
    documentation="Invalid request fields (one count per field per request)",
    labelnames=["route", "field"],
)
ERRORS = bentoml.metrics.Counter(
    name="delivery_eta_errors_total",
    documentation="Failed requests by category (validation, feature_store, model, internal, overload)",
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
    documentation="The served model (value 1)",
    labelnames=["model_version", "stage", "trained_at"],
    multiprocess_mode="livemax",
)
TRAINING_MAE = bentoml.metrics.Gauge(
    name="delivery_eta_model_training_mae_minutes",
    documentation="Holdout MAE measured at training time",
    labelnames=["model_version"],
    multiprocess_mode="livemax",
)
FEEDBACK = bentoml.metrics.Counter(
    name="delivery_eta_feedback_total",
    documentation="Feedback (actual delivery time) received, by outcome",
    labelnames=["model_version", "result"],
)
ONLINE_ABS_ERROR = bentoml.metrics.Histogram(
    name="delivery_eta_online_absolute_error_minutes",
    documentation="|actual - predicted| for predictions that got feedback",
    labelnames=["model_version"],
    buckets=_ERROR_MINUTES,
)
INTERVAL_HITS = bentoml.metrics.Counter(
    name="delivery_eta_interval_hits_total",
    documentation="Feedback whose actual was inside (covered=true) or outside the interval",
    labelnames=["model_version", "covered"],
)
