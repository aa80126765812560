"""What happens once per champion model call, on the merged rows of every request in it:
outputs clamped to the plausible bounds, then counted (metrics, by cohort) and watched for
drift. The batcher runs :class:`ChampionCalls` as its ``on_call``; the challenger's outputs
go through the same pure :meth:`Bounds.clamp`."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from models.cohorts import Cohorts
from serving.pipeline.batching import ModelCallResult
from serving.telemetry.drift_monitor import DriftMonitor
from serving.telemetry.metrics import MetricsRecorder
from serving.telemetry.roles import CHAMPION

DRIFT_SCORE_EVERY_ROWS = 200
"""Drift is re-scored after this many new rows: often enough for alerts, cheap per request."""
COHORT_DRIFT_EVERY_S = 5.0
"""Cohort drift (``models.cohorts.Cohorts.drift``) is re-scored at most this often per worker;
Prometheus scrapes every 15 s."""


@dataclass(frozen=True)
class Bounds:
    """Plausible range of a delivery time; model output outside it is clamped (and counted)."""

    floor_min: float
    ceiling_min: float

    def clamp(self, outputs: np.ndarray) -> np.ndarray:
        """``outputs`` (point, lower, upper per row) moved onto the bounds."""
        return self.clamp_counted(outputs)[0]

    def clamp_counted(self, outputs: np.ndarray) -> tuple[np.ndarray, dict[str, int]]:
        """:meth:`clamp`, and how many points were below (``lower``) or above (``upper``)."""
        low, high = self.floor_min, self.ceiling_min
        points = outputs[:, 0]
        clamped = {"lower": int((points < low).sum()), "upper": int((points > high).sum())}
        if clamped["lower"] or clamped["upper"]:
            outputs = np.clip(outputs, low, high)
        return outputs, clamped


class ChampionCalls:
    """The champion batcher's ``on_call``: clamp one call's outputs, then observe them and the
    call (metrics, drift). Its ``tags`` are the rows' entity-known flags (the entity cohort)."""

    def __init__(
        self,
        bounds: Bounds,
        cohorts: Cohorts,
        metrics: MetricsRecorder | None = None,
        drift: DriftMonitor | None = None,
    ) -> None:
        self._bounds = bounds
        self._cohorts = cohorts
        self._metrics = metrics
        self._drift = drift
        self._rows_since_drift = 0
        self._cohort_drift_at = -float("inf")

    def __call__(self, call: ModelCallResult) -> np.ndarray:
        """The outputs the requests get (clamped)."""
        outputs, clamped = self._bounds.clamp_counted(call.outputs)
        features = call.features
        if call.tags is None:
            raise ValueError("champion calls carry each row's entity-known flag as its tag")
        cohorts = self._cohorts.codes(features, call.tags)
        if self._metrics is not None:
            self._metrics.model_call(CHAMPION, call.seconds, len(features))
            self._metrics.predictions(outputs, cohorts, clamped)
        if self._drift is not None:
            self._observe_drift(self._drift, features, outputs[:, 0], cohorts)
        return outputs

    def _observe_drift(
        self, drift: DriftMonitor, features: np.ndarray, points: np.ndarray, cohorts: np.ndarray
    ) -> None:
        drift.observe(features, points, cohorts)
        self._rows_since_drift += len(points)
        if self._rows_since_drift < DRIFT_SCORE_EVERY_ROWS:
            return
        self._rows_since_drift = 0
        scores = drift.scores()
        if scores is not None and self._metrics is not None:
            # Cohort PSIs move slowly and cost ~0.5 ms (8 cohorts by default): at most once per
            # COHORT_DRIFT_EVERY_S, not on every 1000-row request.
            now = time.monotonic()
            cohort_psi: tuple[dict[str, float], dict[str, float]] = ({}, {})
            if now - self._cohort_drift_at >= COHORT_DRIFT_EVERY_S:
                self._cohort_drift_at = now
                cohort_psi = drift.cohort_scores()
            self._metrics.drift(scores, *cohort_psi)
