"""The trained predictor: point estimate plus a conformalised 90 % interval (CQR)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.base import RegressorMixin


@dataclass
class DeliveryTimeModel:
    """Point regressor plus conformalised quantile regressors (Romano et al., 2019).

    ``lower_model``/``upper_model`` estimate the 5 % and 95 % quantiles; the calibration step
    widens both by ``interval_correction`` minutes so that holdout coverage reaches the nominal
    level. The width therefore varies per order (long deliveries are noisier), unlike a
    constant +-.
    """

    point_model: RegressorMixin
    lower_model: RegressorMixin
    upper_model: RegressorMixin
    interval_correction: float
    feature_names: tuple[str, ...]
    interval_level: float = 0.90
    # Class-level defaults: models pickled before categories existed load with "no categories".
    category_levels: tuple[int, ...] = ()
    """Per model input, how many codes it takes when it is a category (codes ``0..levels-1``,
    the contract's ``category_levels``), 0 for a number; empty when no input is a category."""
    unfitted_category_codes: tuple[tuple[int, ...], ...] = ()
    """Per model input, the category codes the trees never saw in training (a declared value no
    training row had, or ``other`` when every value was known); empty when there are none.
    sklearn reads such a code as missing; :meth:`unfitted_as_missing` lets the Treelite and
    TL2cgen evaluators read it the same way."""
    category_corrections: tuple[tuple[int, tuple[float, ...]], ...] = ()
    """Per category input (its column), each code's own interval correction
    (``models.intervals.category_corrections``); a row is widened by the largest correction of
    its codes instead of ``interval_correction``. Empty without categories."""

    def predict_rows(self, features: np.ndarray) -> np.ndarray:
        """Predict for a float matrix in ``feature_names`` order.

        Returns an ``(n, 3)`` array: point, lower, upper (minutes). The interval always
        contains the point and never goes below zero.
        """
        return self.combine(
            self.point_model.predict(features),
            self.lower_model.predict(features),
            self.upper_model.predict(features),
            features,
        )

    def unfitted_as_missing(self, rows: np.ndarray) -> np.ndarray:
        """``rows`` with every category code in :attr:`unfitted_category_codes` set to NaN (a
        copy; ``rows`` itself when there are none, as for every model without categories).

        sklearn evaluates a category code it was not fitted on as a missing value; Treelite's
        import of the same trees routes it by the split's category list instead, which can
        differ. Evaluators other than sklearn call this first so that every runtime gives
        sklearn's answer for every code the contract allows.
        """
        if not self.unfitted_category_codes:
            return rows
        out = np.array(rows, dtype=np.float64, copy=True, order="C")
        for column, codes in enumerate(self.unfitted_category_codes):
            if codes:
                out[np.isin(out[:, column], codes), column] = np.nan
        return out

    def combine(
        self, point: np.ndarray, lower: np.ndarray, upper: np.ndarray, features: np.ndarray
    ) -> np.ndarray:
        """Raw outputs of the three regressors for ``features`` -> ``(n, 3)`` point, lower,
        upper."""
        return self.combine_stacked(
            np.column_stack(
                [np.asarray(v, dtype=np.float64).reshape(-1) for v in (point, lower, upper)]
            ),
            features,
        )

    def corrections(self, features: np.ndarray) -> float | np.ndarray:
        """The interval correction of each row of ``features``: the largest of its category
        codes' own corrections, or the one overall correction for a model without them."""
        if not self.category_corrections:
            return self.interval_correction
        widest = np.zeros(len(features), dtype=np.float64)
        for column, table in self.category_corrections:
            codes = features[:, column]
            known = np.isfinite(codes) & (codes >= 0) & (codes < len(table))
            per_row = np.full(len(features), self.interval_correction)
            per_row[known] = np.asarray(table)[codes[known].astype(np.int64)]
            np.maximum(widest, per_row, out=widest)
        return widest

    def combine_stacked(self, raw: np.ndarray, features: np.ndarray) -> np.ndarray:
        """``(n, 3)`` float64 raw outputs (point, lower, upper) of ``features``, turned in place
        into the ``(n, 3)`` prediction: the interval widened by the rows' corrections
        (:meth:`corrections`), clipped to contain the point and to stay >= 0."""
        point, lower, upper = raw[:, 0], raw[:, 1], raw[:, 2]
        correction = self.corrections(features)
        lower -= correction
        upper += correction
        np.minimum(lower, point, out=lower)
        np.maximum(lower, 0.0, out=lower)
        np.maximum(upper, point, out=upper)
        return raw
