"""The prediction log's Prometheus metrics, and :class:`PredictionLogMetrics`, the log's
observer (``LogObserver``) in the service, which is the only code that updates them.

Part of the monitoring contract like ``serving.telemetry.metrics``: renaming a series breaks
deploy/monitoring's rules, alerts and dashboard.
"""

from __future__ import annotations

import bentoml

from prediction_log import (
    EVICTION_REASONS,
    RECORD_OUTCOMES,
    EvictionReason,
    RecordOutcome,
)

# --- Prediction log (prediction_log/) -------------------------------------------
# Labels come from fixed sets: backend (sqlite | redis), outcome (RECORD_OUTCOMES), reason
# (EVICTION_REASONS). Every prediction handed to the log is counted once under one outcome.

PREDICTION_LOG_RECORDS = bentoml.metrics.Counter(
    name="delivery_eta_prediction_log_records_total",
    documentation="Predictions handed to the prediction log, by outcome (written, sampled_out, "
    "dropped_queue_full, dropped_write_failed)",
    labelnames=["backend", "outcome"],
)
PREDICTION_LOG_QUEUE_ROWS = bentoml.metrics.Gauge(
    name="delivery_eta_prediction_log_queue_rows",
    documentation="Predictions queued in memory for the prediction log (all live workers)",
    labelnames=["backend"],
    multiprocess_mode="livesum",
)
# livemin: 0 as soon as any live worker's store fails.
PREDICTION_LOG_UP = bentoml.metrics.Gauge(
    name="delivery_eta_prediction_log_up",
    documentation="1 while the prediction log's store accepts writes and lookups, else 0",
    labelnames=["backend"],
    multiprocess_mode="livemin",
)
PREDICTION_LOG_EVICTED = bentoml.metrics.Counter(
    name="delivery_eta_prediction_log_evicted_rows_total",
    documentation="Stored predictions deleted before any label, by reason (retention, size_cap)",
    labelnames=["backend", "reason"],
)
PREDICTION_LOG_SIZE = bentoml.metrics.Gauge(
    name="delivery_eta_prediction_log_size_bytes",
    documentation="Bytes the SQLite prediction log holds (pages in use)",
    labelnames=["backend"],
    multiprocess_mode="livemax",
)


class PredictionLogMetrics:
    """The prediction log's metrics for one backend (a ``LogObserver``); children resolved once."""

    def __init__(self, backend: str) -> None:
        self._records = {
            outcome: PREDICTION_LOG_RECORDS.labels(backend=backend, outcome=outcome)
            for outcome in RECORD_OUTCOMES
        }
        self._evicted = {
            reason: PREDICTION_LOG_EVICTED.labels(backend=backend, reason=reason)
            for reason in EVICTION_REASONS
        }
        self._queue_rows = PREDICTION_LOG_QUEUE_ROWS.labels(backend=backend)
        self._up = PREDICTION_LOG_UP.labels(backend=backend)
        self._size = PREDICTION_LOG_SIZE.labels(backend=backend)

    def records(self, outcome: RecordOutcome, rows: int) -> None:
        """``rows`` predictions reached ``outcome``."""
        self._records[outcome].inc(rows)

    def queue_rows(self, rows: int) -> None:
        """Rows now queued in this worker."""
        self._queue_rows.set(rows)

    def store_up(self, up: bool) -> None:
        """Whether the store's last write or lookup succeeded."""
        self._up.set(1 if up else 0)

    def evicted(self, reason: EvictionReason, rows: int) -> None:
        """``rows`` stored predictions deleted for ``reason``."""
        self._evicted[reason].inc(rows)

    def size_bytes(self, size: int) -> None:
        """Bytes the store holds."""
        self._size.set(size)
