"""The order the floors validate and the constant answer they return.

A copy of ``serving.schema.Order``'s contract (same fields, bounds, strictness), so the floors
pay the service's validation cost without importing ``serving`` (which pulls in numpy and
pandas and would inflate a floor's memory). tests/loadtest/test_floor_apps.py checks that
the two schemas stay equal.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

EntityId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
EntityMinutes = Annotated[float, Field(gt=0, le=300, allow_inf_nan=False)]


class Order(BaseModel):
    """One order to predict; entity averages are optional overrides of the feature store."""

    model_config = ConfigDict(extra="forbid", strict=True)

    restaurant_id: EntityId
    driver_id: EntityId
    distance_km: float = Field(ge=0.1, le=50, allow_inf_nan=False)
    is_peak_hour: int = Field(ge=0, le=1, description="1 during lunch/dinner peak hours, else 0")
    order_value: float = Field(ge=0, le=100_000, allow_inf_nan=False)
    restaurant_avg_delivery_time: EntityMinutes | None = None
    driver_avg_delivery_time: EntityMinutes | None = None


class FloorAnswer(BaseModel):
    """The service's response fields, filled with constants."""

    predicted_delivery_time_min: float
    confidence_interval_lower: float
    confidence_interval_upper: float
    model_version: str
    prediction_id: str


ANSWER = FloorAnswer(
    predicted_delivery_time_min=30.0,
    confidence_interval_lower=24.0,
    confidence_interval_upper=36.0,
    model_version="floor",
    prediction_id="00000000-0000-4000-8000-000000000000",
)
