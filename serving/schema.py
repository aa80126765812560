"""Request and response models of the /v1 API (the HTTP contract; the model's features are
``models.features``)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from models.features import (
    DELIVERY_TIME_MIN_RANGE,
    DISTANCE_KM_RANGE,
    ENTITY_ID_MAX_LENGTH,
    ENTITY_ID_PATTERN,
    ORDER_VALUE_RANGE,
    FeatureSource,
)

EntityId = Annotated[
    str,
    Field(min_length=1, max_length=ENTITY_ID_MAX_LENGTH, pattern=ENTITY_ID_PATTERN),
]
# Entity averages are minutes; bounds reject nonsense (negative, days) rather than clamp it.
EntityMinutes = Annotated[float, Field(gt=0, le=300, allow_inf_nan=False)]

ORDER_EXAMPLE: dict[str, JsonValue] = {
    "restaurant_id": "r_0042",
    "driver_id": "d_0117",
    "distance_km": 3.2,
    "is_peak_hour": 1,
    "order_value": 27.5,
}


class Order(BaseModel):
    """One order to predict; entity averages are optional overrides of the feature store."""

    # "example" (OpenAPI 3.0), not "examples": BentoML 1.4's OpenAPI Schema rejects the latter.
    # strict: JSON booleans and numeric strings are not numbers ("distance_km": "3.5" and
    # "is_peak_hour": true were accepted in lax mode -- found by fuzzing).
    model_config = ConfigDict(
        extra="forbid", strict=True, json_schema_extra={"example": ORDER_EXAMPLE}
    )

    restaurant_id: EntityId
    driver_id: EntityId
    distance_km: float = Field(
        ge=DISTANCE_KM_RANGE[0], le=DISTANCE_KM_RANGE[1], allow_inf_nan=False
    )
    is_peak_hour: int = Field(ge=0, le=1, description="1 during lunch/dinner peak hours, else 0")
    order_value: float = Field(
        ge=ORDER_VALUE_RANGE[0], le=ORDER_VALUE_RANGE[1], allow_inf_nan=False
    )
    restaurant_avg_delivery_time: EntityMinutes | None = None
    driver_avg_delivery_time: EntityMinutes | None = None


class Prediction(BaseModel):
    """Predicted delivery time with its calibrated 90 % interval."""

    predicted_delivery_time_min: float
    confidence_interval_lower: float
    confidence_interval_upper: float
    model_version: str
    prediction_id: str
    latency_ms: float
    features_source: dict[str, FeatureSource]


class Feedback(BaseModel):
    """The actual delivery time of an earlier prediction."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "example": {
                "prediction_id": "ec5640c8-e9de-4bfb-8a6e-931cc565e065",
                "actual_delivery_time_min": 27.0,
            }
        },
    )

    prediction_id: str = Field(
        pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
    )
    # Physically plausible only: under a minute from order to door does not happen (the model
    # never predicts below 1, and the training data has none), and past 5 hours -- the bound
    # of an entity's average too -- the order was lost or cancelled, not delivered late.
    actual_delivery_time_min: float = Field(
        ge=DELIVERY_TIME_MIN_RANGE[0], le=DELIVERY_TIME_MIN_RANGE[1], allow_inf_nan=False
    )


class FeedbackReceipt(BaseModel):
    """The label joined to its prediction (``status`` duplicate: it had been joined before)."""

    prediction_id: str
    status: Literal["joined", "duplicate"]
    model_version: str
    predicted_delivery_time_min: float
    actual_delivery_time_min: float
    absolute_error_min: float
    within_interval: bool


class BatchPrediction(BaseModel):
    """Predictions in the order of the request's ``orders``."""

    predictions: list[Prediction]
    model_version: str
