"""What labels tell: the metrics of feedback (actual delivery times joined to predictions) --
online absolute error and interval coverage by model, role and cohort -- and
:func:`observe_feedback`, the only code that updates them.

Part of the monitoring contract like ``serving.telemetry.metrics`` (which re-counts nothing
here: ``MetricsRecorder.feedback`` hands each label to :func:`observe_feedback`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import get_args

import bentoml
import numpy as np

from models.cohorts import ENTITY_DIMENSION, Cohorts
from models.intervals import score_answer
from prediction_log import FeedbackResult, PredictionRecord
from prediction_log.records import FeedbackStatus
from serving.telemetry.roles import CHALLENGER, CHAMPION, Role

ERROR_MINUTES = [0.5, 1, 2, 3, 4, 5, 6, 8, 10, 15, 20, 30, 60]
"""Histogram buckets of absolute errors and differences, in minutes."""

FEEDBACK = bentoml.metrics.Counter(
    name="delivery_eta_feedback_total",
    documentation="Feedback (actual delivery time) received, by outcome",
    labelnames=["model_version", "result"],
)
ONLINE_ABS_ERROR = bentoml.metrics.Histogram(
    name="delivery_eta_online_absolute_error_minutes",
    documentation="|actual - predicted| for predictions that got feedback, by model version and "
    "role (the challenger's error is measured on the same labelled rows)",
    labelnames=["model_version", "role"],
    buckets=ERROR_MINUTES,
)
INTERVAL_HITS = bentoml.metrics.Counter(
    name="delivery_eta_interval_hits_total",
    documentation="Feedback whose actual was inside (covered=true) or outside the interval",
    labelnames=["model_version", "role", "covered"],
)

COHORT_ABS_ERROR = bentoml.metrics.Histogram(
    name="delivery_eta_cohort_online_absolute_error_minutes",
    documentation="|actual - predicted| per cohort for predictions that got feedback",
    labelnames=["model_version", "role", "cohort"],
    buckets=[1, 2, 5, 10, 20, 30],
)
COHORT_INTERVAL_HITS = bentoml.metrics.Counter(
    name="delivery_eta_cohort_interval_hits_total",
    documentation="Feedback inside (covered=true) or outside the interval, per cohort",
    labelnames=["model_version", "role", "cohort", "covered"],
)


FEEDBACK_RESULTS: tuple[str, ...] = get_args(FeedbackStatus)
"""``result`` values of :data:`FEEDBACK`."""
COVERED = ("true", "false")


def start_label_series(versions: Mapping[Role, str], cohort_names: Sequence[str]) -> None:
    """Export every label series of the loaded models at 0 from the start.

    A counter that first appears with its first label has no earlier sample, so ``rate()``
    sees no increase: a pod's first labels never counted in the online MAE, and a fresh pod's
    ratio was 0/0 (found by ``make cluster-test`` on a real Prometheus). The set is bounded:
    two roles x the contract's cohorts."""
    for role, version in versions.items():
        if role == CHAMPION:
            for outcome in FEEDBACK_RESULTS:
                FEEDBACK.labels(model_version=version, result=outcome)
        ONLINE_ABS_ERROR.labels(model_version=version, role=role)
        for covered in COVERED:
            INTERVAL_HITS.labels(model_version=version, role=role, covered=covered)
        for cohort in cohort_names:
            labels = {"model_version": version, "role": role, "cohort": cohort}
            COHORT_ABS_ERROR.labels(**labels)
            for covered in COVERED:
                COHORT_INTERVAL_HITS.labels(**labels, covered=covered)


def observe_feedback(result: FeedbackResult, cohorts: Cohorts, served_version: str) -> None:
    """Count feedback; a first label also feeds the online error and coverage of the model
    that answered and, when the challenger scored the same row, of the challenger."""
    version = result.record.model_version if result.record else served_version
    FEEDBACK.labels(model_version=version, result=result.status).inc()
    if result.status != "joined" or result.record is None or result.actual is None:
        return
    record, actual = result.record, result.actual
    names = record_cohorts(record, cohorts)
    answers: list[tuple[Role, str, float, float, float]] = [
        (CHAMPION, version, record.predicted, record.lower, record.upper)
    ]
    if record.shadow is not None:
        shadow = record.shadow
        answers.append(
            (CHALLENGER, shadow.model_version, shadow.predicted, shadow.lower, shadow.upper)
        )
    for role, model_version, predicted, lower, upper in answers:
        score = score_answer(predicted, lower, upper, actual)
        error = score.absolute_error
        covered = "true" if score.within_interval else "false"
        ONLINE_ABS_ERROR.labels(model_version=model_version, role=role).observe(error)
        INTERVAL_HITS.labels(model_version=model_version, role=role, covered=covered).inc()
        for cohort in names:
            labels = {"model_version": model_version, "role": role, "cohort": cohort}
            COHORT_ABS_ERROR.labels(**labels).observe(error)
            COHORT_INTERVAL_HITS.labels(**labels, covered=covered).inc()


def record_cohorts(record: PredictionRecord, cohorts: Cohorts) -> list[str]:
    """The cohorts of one logged prediction: one per dimension from its features, the entity
    one only when the block kept its feature sources. None when its features are not the
    served contract's (a row logged by a model of another contract before a promotion)."""
    if len(record.features) != len(cohorts.contract.feature_names):
        return []
    features = np.asarray([record.features])
    codes = cohorts.codes(features, np.array([bool(record.entity_known)]))[0].tolist()
    names = [cohorts.names[code] for code in codes]
    if record.entity_known is None:
        entity = cohorts.dimensions.get(ENTITY_DIMENSION, ())
        names = [name for name in names if name not in entity]
    return names
