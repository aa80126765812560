"""The fixed cohorts every prediction, error and drift view is sliced by, from the contract.

A contract field may declare a cohort (``cohort:`` in its YAML): a number's bands, a boolean's
two values, a category's values. Each such field is one dimension; a contract with entities
adds ``entity`` (both entities known -- their averages came from the request or the online
store -- or at least one fell back to the default). The set is fixed by the contract: cohort
labels are these names, never a value a request sends, so the metric series they make are
bounded whatever the traffic. The default contract gives today's eight: peak / off-peak, four
distance bands, entity known / unknown.

Training's segment report (``models.training.fit.segment_metrics``) uses the same cohorts, so a
holdout segment and a live cohort of the same name are the same orders.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from models.contract import CategoryField, FeatureContract
from models.drift_stats import bin_shares, psi, reference_bins

MIN_ROWS_FOR_COHORT_PSI = 200
"""A cohort's prediction PSI needs this many rows, in training (its reference) and live alike:
fewer, and 10 bins measure mostly sampling noise."""
ENTITY_DIMENSION = "entity"


@dataclass(frozen=True)
class Cohorts:
    """A contract's cohort dimensions, and the coding of model-input rows into them."""

    contract: FeatureContract
    dimensions: dict[str, tuple[str, ...]] = field(init=False)
    """Each dimension's cohorts, in code order."""
    names: tuple[str, ...] = field(init=False)
    """All cohort names; a row's cohort codes index this tuple."""
    _columns: list[tuple[int | None, np.ndarray | None]] = field(init=False, repr=False)
    _offsets: np.ndarray = field(init=False, repr=False)
    _dimension_of: list[int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        dimensions = dict(self.contract.cohort_dimensions)
        columns: list[tuple[int | None, np.ndarray | None]] = []
        for dimension in dimensions:
            name = self.contract.cohort_field(dimension)
            if name is None:  # the entity dimension
                columns.append((None, None))
                continue
            spec = self.contract.fields[name]
            column = self.contract.feature_names.index(name)
            cohort = getattr(spec, "cohort", None)
            if spec.kind in ("number", "integer") and cohort is not None:
                edges = np.asarray(cohort.edges, dtype=np.float64)
            elif isinstance(spec, CategoryField):
                # Codes 0..k-1: the inner edges between them give one band per code.
                edges = np.arange(len(spec.levels()) - 1, dtype=np.float64) + 0.5
            else:  # boolean: 0 / 1
                edges = np.array([0.5])
            columns.append((column, edges))
        set_ = object.__setattr__
        set_(self, "dimensions", dimensions)
        set_(self, "names", tuple(n for names in dimensions.values() for n in names))
        set_(self, "_columns", columns)
        set_(self, "_offsets", np.cumsum([0, *(len(n) for n in dimensions.values())])[:-1])
        set_(self, "_dimension_of", [d for d, n in enumerate(dimensions.values()) for _ in n])

    def codes(self, features: np.ndarray, entity_known: np.ndarray) -> np.ndarray:
        """``(n, len(dimensions))`` indices into :attr:`names`: each row's cohort per dimension.

        ``features`` is the model input (``feature_names`` order); ``entity_known`` is True
        where every entity feature came from the request or the online store.
        """
        codes = np.empty((len(features), len(self._columns)), dtype=np.int64)
        for d, (column, edges) in enumerate(self._columns):
            if column is None or edges is None:
                codes[:, d] = ~np.asarray(entity_known, dtype=bool)
            else:
                codes[:, d] = np.searchsorted(edges, features[:, column], side="right")
        return codes + self._offsets

    def members(self, codes: np.ndarray, index: int) -> np.ndarray:
        """Mask of the rows of ``codes`` in cohort ``names[index]``."""
        return codes[:, self._dimension_of[index]] == index

    def reference(
        self, features: np.ndarray, predictions: np.ndarray, entity_known: np.ndarray
    ) -> dict[str, Any]:
        """What training records for cohort drift: each dimension's cohort shares, and the
        prediction bins of every cohort with at least :data:`MIN_ROWS_FOR_COHORT_PSI` rows."""
        codes = self.codes(features, entity_known)
        counts = np.bincount(codes.ravel(), minlength=len(self.names))
        shares = {
            dimension: [
                round(float(counts[self.names.index(c)]) / max(len(features), 1), 6) for c in names
            ]
            for dimension, names in self.dimensions.items()
        }
        bins = {}
        for index, name in enumerate(self.names):
            in_cohort = self.members(codes, index)
            if in_cohort.sum() >= MIN_ROWS_FOR_COHORT_PSI:
                bins[name] = reference_bins(predictions[in_cohort])
        return {"shares": shares, "predictions": bins}

    def drift(
        self, reference: Mapping[str, Any], codes: np.ndarray, predictions: np.ndarray
    ) -> tuple[dict[str, float], dict[str, float]]:
        """(prediction PSI per cohort, mix PSI per dimension) of live rows against ``reference``.

        A cohort is scored only when both training and the live rows have enough of it; a
        dimension's mix PSI compares the live share of each of its cohorts with training's.
        """
        counts = np.bincount(codes.ravel(), minlength=len(self.names))
        mix = {}
        for dimension, names in self.dimensions.items():
            expected = reference.get("shares", {}).get(dimension)
            if expected is None or len(expected) != len(names):
                continue
            live = np.array([counts[self.names.index(c)] for c in names], dtype=np.float64)
            mix[dimension] = psi(live / max(len(codes), 1), np.asarray(expected))
        prediction_psi = {}
        for name, bins in reference.get("predictions", {}).items():
            if name not in self.names or counts[self.names.index(name)] < MIN_ROWS_FOR_COHORT_PSI:
                continue
            index = self.names.index(name)
            live = bin_shares(predictions[self.members(codes, index)], bins["inner_edges"])
            prediction_psi[name] = psi(live, np.asarray(bins["shares"]))
        return prediction_psi, mix
