"""The fixed cohorts every prediction, error and drift view is sliced by.

Three dimensions, each splitting all orders: the hour (peak / off-peak), the distance band
(0-2, 2-5, 5-10, >= 10 km) and whether both entities were known (their averages came from the
request or the online store) or at least one fell back to the default. The set is fixed and
documented (docs/shadow.md): cohort labels are these names, never a value a request sends,
so the metric series they make are bounded (8 cohorts) whatever the traffic.

Training's segment report (``models.training.fit.segment_metrics``) uses the same bands, so a
holdout segment and a live cohort of the same name are the same orders.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from models.drift_stats import bin_shares, psi, reference_bins
from models.features import FEATURE_NAMES

DISTANCE_EDGES_KM: tuple[float, ...] = (2.0, 5.0, 10.0)
"""Inner edges of the distance bands; a distance on an edge belongs to the band above it."""

DIMENSIONS: dict[str, tuple[str, ...]] = {
    "peak": ("off_peak", "peak"),
    "distance": ("distance_0_2km", "distance_2_5km", "distance_5_10km", "distance_10km_plus"),
    "entity": ("entity_known", "entity_unknown"),
}
"""Each dimension's cohorts, in code order."""

COHORTS: tuple[str, ...] = tuple(name for names in DIMENSIONS.values() for name in names)
"""All cohort names; a row's cohort codes index this tuple."""

_OFFSETS = np.cumsum([0, *(len(names) for names in DIMENSIONS.values())])[:-1]
# The column of cohort_codes that holds each cohort (its dimension's).
_DIMENSION_OF = [d for d, names in enumerate(DIMENSIONS.values()) for _ in names]
_DISTANCE = FEATURE_NAMES.index("distance_km")
_PEAK = FEATURE_NAMES.index("is_peak_hour")

MIN_ROWS_FOR_COHORT_PSI = 200
"""A cohort's prediction PSI needs this many rows, in training (its reference) and live alike:
fewer, and 10 bins measure mostly sampling noise."""


def cohort_codes(features: np.ndarray, entity_known: np.ndarray) -> np.ndarray:
    """``(n, 3)`` indices into :data:`COHORTS`: each row's peak, distance and entity cohort.

    ``features`` is the model input (``FEATURE_NAMES`` order); ``entity_known`` is True where
    both entity features came from the request or the online store.
    """
    codes = np.empty((len(features), len(DIMENSIONS)), dtype=np.int64)
    codes[:, 0] = features[:, _PEAK] == 1
    codes[:, 1] = np.searchsorted(DISTANCE_EDGES_KM, features[:, _DISTANCE], side="right")
    codes[:, 2] = ~np.asarray(entity_known, dtype=bool)
    return codes + _OFFSETS


def cohort_reference(
    features: np.ndarray, predictions: np.ndarray, entity_known: np.ndarray
) -> dict[str, Any]:
    """What training records for cohort drift: each dimension's cohort shares, and the
    prediction bins of every cohort with at least :data:`MIN_ROWS_FOR_COHORT_PSI` rows."""
    codes = cohort_codes(features, entity_known)
    counts = np.bincount(codes.ravel(), minlength=len(COHORTS))
    shares = {
        dimension: [
            round(float(counts[COHORTS.index(c)]) / max(len(features), 1), 6) for c in names
        ]
        for dimension, names in DIMENSIONS.items()
    }
    bins = {}
    for index, name in enumerate(COHORTS):
        in_cohort = codes[:, _DIMENSION_OF[index]] == index
        if in_cohort.sum() >= MIN_ROWS_FOR_COHORT_PSI:
            bins[name] = reference_bins(predictions[in_cohort])
    return {"shares": shares, "predictions": bins}


def cohort_drift(
    reference: Mapping[str, Any], codes: np.ndarray, predictions: np.ndarray
) -> tuple[dict[str, float], dict[str, float]]:
    """(prediction PSI per cohort, mix PSI per dimension) of live rows against ``reference``.

    A cohort is scored only when both training and the live rows have enough of it; a
    dimension's mix PSI compares the live share of each of its cohorts with training's.
    """
    counts = np.bincount(codes.ravel(), minlength=len(COHORTS))
    mix = {}
    for dimension, names in DIMENSIONS.items():
        expected = reference.get("shares", {}).get(dimension)
        if expected is None or len(expected) != len(names):
            continue
        live = np.array([counts[COHORTS.index(c)] for c in names], dtype=np.float64)
        mix[dimension] = psi(live / max(len(codes), 1), np.asarray(expected))
    prediction_psi = {}
    for name, bins in reference.get("predictions", {}).items():
        if name not in COHORTS or counts[COHORTS.index(name)] < MIN_ROWS_FOR_COHORT_PSI:
            continue
        index = COHORTS.index(name)
        live = bin_shares(predictions[codes[:, _DIMENSION_OF[index]] == index], bins["inner_edges"])
        prediction_psi[name] = psi(live, np.asarray(bins["shares"]))
    return prediction_psi, mix
