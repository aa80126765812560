"""Request and response models of the /v1 API, built from the served model's feature contract.

The contract (``models.contract``) is the API: :func:`order_model` turns its fields into the
request model -- kinds, bounds, category values, descriptions and the example -- so the
validation, the 400 answers and the OpenAPI document all say what the model was trained on.
With the default contract the document is exactly the one of the hand-written model it
replaced (``tests/service/snapshots/openapi_v1.json``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from models.contract import FeatureContract

# The request model is the contract's (models.contract.request): re-exported as the API's.
from models.contract.request import CATEGORY_TEXT_MAX_LENGTH as CATEGORY_TEXT_MAX_LENGTH
from models.contract.request import bound
from models.contract.request import order_model as order_model
from models.features import FeatureSource

MAX_LISTED_ERRORS = 10
"""Validation errors a 400 answer and its log line list; the rest are only counted. A client
fixes its first few mistakes; echoing thousands cost 10.9x the request in response bytes."""

MAX_EXAMPLE_ORDERS = 2
"""Orders in the batch route's example: the contract's example, then its first variation."""


def batch_example(contract: FeatureContract) -> list[dict[str, Any]]:
    """The batch route's example: the contract's example order and its first variation
    (``contract.example_orders()``), e.g. an entity the store does not know, its average
    sent in the request."""
    return contract.example_orders()[:MAX_EXAMPLE_ORDERS]


def feedback_model(contract: FeatureContract) -> type[BaseModel]:
    """The feedback request: a prediction id and the actual delivery time, within the
    contract's target bounds (what a model trained on that target can be scored against)."""
    return create_model(
        "Feedback",
        __config__=ConfigDict(
            extra="forbid",
            strict=True,
            json_schema_extra={
                "example": {
                    "prediction_id": "ec5640c8-e9de-4bfb-8a6e-931cc565e065",
                    "actual_delivery_time_min": 27.0,
                }
            },
        ),
        __doc__="The actual delivery time of an earlier prediction.",
        __module__=__name__,
        prediction_id=(
            str,
            Field(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"),
        ),
        # Physically plausible only: under a minute from order to door does not happen, and
        # past the target's maximum (5 hours by default) the order was lost or cancelled.
        actual_delivery_time_min=(
            float,
            Field(
                ge=bound(contract.target.minimum),
                le=bound(contract.target.maximum),
                allow_inf_nan=False,
            ),
        ),
    )


class Prediction(BaseModel):
    """Predicted delivery time with its calibrated 90 % interval."""

    predicted_delivery_time_min: float
    confidence_interval_lower: float
    confidence_interval_upper: float
    model_version: str
    prediction_id: str
    latency_ms: float
    features_source: dict[str, FeatureSource]
    """Per entity aggregate of the contract (``contract.entity_features``), where its value
    came from."""


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
