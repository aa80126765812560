"""The prediction path without HTTP: feature lookup -> assembly -> batched model -> response."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence

from models.batching import AdaptiveBatcher
from models.feature_store import FeatureStore
from models.features import assemble_features
from models.schema import Order, Prediction


class DeliveryTimePredictor:
    """Turns validated orders into :class:`Prediction` objects, in input order."""

    def __init__(
        self,
        *,
        model_version: str,
        feature_store: FeatureStore,
        batcher: AdaptiveBatcher,
        defaults: dict[str, float],
    ) -> None:
        self.model_version = model_version
        self.feature_store = feature_store
        self._batcher = batcher
        self._defaults = defaults

    def close(self) -> None:
        """Stop the batcher."""
        self._batcher.shutdown()

    async def predict(self, orders: Sequence[Order]) -> list[Prediction]:
        """Predict every order; all rows of one call go to the model in the same batch."""
        started = time.perf_counter()
        online = await self.feature_store.lookup(
            [o.restaurant_id for o in orders], [o.driver_id for o in orders]
        )
        features, sources = assemble_features(orders, online, self._defaults)
        outputs = await self._batcher.predict(features)
        latency_ms = round((time.perf_counter() - started) * 1000.0, 3)
        # model_construct: every field is produced here from typed values; re-validating
        # thousands of rows per batch would only cost time.
        return [
            Prediction.model_construct(
                predicted_delivery_time_min=float(point),
                confidence_interval_lower=float(lower),
                confidence_interval_upper=float(upper),
                model_version=self.model_version,
                prediction_id=str(uuid.uuid4()),
                latency_ms=latency_ms,
                features_source=row_sources,
            )
            for (point, lower, upper), row_sources in zip(outputs.tolist(), sources, strict=True)
        ]
