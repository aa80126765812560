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

    def predict_rows(self, features: np.ndarray) -> np.ndarray:
        """Predict for a float matrix in ``feature_names`` order.

        Returns an ``(n, 3)`` array: point, lower, upper (minutes). The interval always
        contains the point and never goes below zero.
        """
        return self.combine(
            self.point_model.predict(features),
            self.lower_model.predict(features),
            self.upper_model.predict(features),
        )

    def combine(self, point: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
        """Raw outputs of the three regressors -> ``(n, 3)`` point, lower, upper."""
        point = np.asarray(point, dtype=np.float64).reshape(-1)
        lower = np.asarray(lower, dtype=np.float64).reshape(-1) - self.interval_correction
        upper = np.asarray(upper, dtype=np.float64).reshape(-1) + self.interval_correction
        return np.column_stack(
            [point, np.maximum(np.minimum(lower, point), 0.0), np.maximum(upper, point)]
        )
