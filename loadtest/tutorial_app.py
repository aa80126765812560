"""The tutorial-style app a user would write instead of the service: FastAPI + one sklearn model.

Written the way "serve a scikit-learn model with FastAPI" tutorials ship it: a pydantic
``Order``, one ``GradientBoostingRegressor(n_estimators=100)`` on the five features, averages per
restaurant and driver in plain dicts, a fixed +-6-minute interval, one INFO log line per
request, and ``uvicorn --workers N`` (uvloop + httptools) for the cores. It accepts the
service's request bodies (``POST /v1/predict``: one order; ``POST /v1/predict/batch``:
``{"orders": [...]}``), so the benchmark's wrk scripts drive both.

    python -m uvicorn loadtest.tutorial_app:app --host 127.0.0.1 --port 8000 \
        --workers 2 --loop uvloop --http httptools --no-access-log

The model is fitted at start-up on the project's synthetic order history (in every worker).
With ``TUTORIAL_MODEL_PATH`` set it is fitted once and loaded from that file afterwards: the
benchmark does that (``python -m loadtest.tutorial_app`` fits and writes the file) so that N
workers do not fit N models on the same cores while the other servers start.
"""

from __future__ import annotations

import logging
import os
import uuid
from pathlib import Path
from typing import Any

import joblib
import numpy as np
from fastapi import FastAPI
from pydantic import BaseModel, Field
from sklearn.ensemble import GradientBoostingRegressor

from models.contract import default_contract
from models.features import TARGET, compute_entity_features, training_frame
from models.training.config import TrainingConfig
from models.training.dataset import generate_splits

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
logger = logging.getLogger("tutorial_app")

MODEL_VERSION = "tutorial-gbr100"
INTERVAL_MIN = 6.0
# 80k generated orders give ~19k training rows (the rest are the history for the averages and
# held-out days): a few seconds of fitting on a quiet core.
TRAINING_ORDERS = int(os.environ.get("TUTORIAL_TRAINING_ORDERS", "80000"))


def fit_model(n_orders: int = TRAINING_ORDERS) -> dict[str, Any]:
    """Fit the model on the synthetic history: ``{"model", "restaurant_avg", "driver_avg",
    "default_avg"}`` (the averages come from the earlier history days, like the service's)."""
    # The project's code builds the training matrix (the default contract's five inputs, in
    # the order ``features`` below sends them); the app itself is written by hand.
    contract = default_contract()
    splits = generate_splits(TrainingConfig(n_orders=n_orders))
    averages = compute_entity_features(splits["history"], contract)
    features = training_frame(splits["train"], contract, averages).to_numpy()
    target = splits["train"][TARGET].to_numpy()
    model = GradientBoostingRegressor(n_estimators=100, random_state=0).fit(features, target)
    return {
        "model": model,
        "restaurant_avg": averages.tables["restaurant_avg_delivery_time"],
        "driver_avg": averages.tables["driver_avg_delivery_time"],
        "default_avg": averages.defaults["restaurant_avg_delivery_time"],
    }


def load_or_fit(path: str | None) -> dict[str, Any]:
    """The fitted model from ``path`` if it exists, else fit it (and write it there, if given)."""
    if path and Path(path).exists():
        loaded: dict[str, Any] = joblib.load(path)
        return loaded
    fitted = fit_model()
    if path:
        partial = Path(f"{path}.{os.getpid()}.tmp")
        joblib.dump(fitted, partial)
        partial.replace(path)  # atomic: a worker starting meanwhile never reads half a file
    return fitted


FITTED = load_or_fit(os.environ.get("TUTORIAL_MODEL_PATH"))
MODEL: GradientBoostingRegressor = FITTED["model"]
RESTAURANT_AVG: dict[str, float] = FITTED["restaurant_avg"]
DRIVER_AVG: dict[str, float] = FITTED["driver_avg"]
DEFAULT_AVG: float = FITTED["default_avg"]


class Order(BaseModel):
    """One order, as the service's /v1/predict takes it."""

    restaurant_id: str
    driver_id: str
    distance_km: float = Field(gt=0)
    is_peak_hour: int = Field(ge=0, le=1)
    order_value: float = Field(ge=0)
    restaurant_avg_delivery_time: float | None = None
    driver_avg_delivery_time: float | None = None


class BatchRequest(BaseModel):
    """Many orders, as the service's /v1/predict/batch takes them."""

    orders: list[Order]


class Prediction(BaseModel):
    """Predicted delivery time with a fixed interval around it."""

    predicted_delivery_time_min: float
    confidence_interval_lower: float
    confidence_interval_upper: float
    model_version: str
    prediction_id: str


class BatchPrediction(BaseModel):
    """Predictions in the order of the request's orders."""

    predictions: list[Prediction]
    model_version: str


def features(order: Order) -> list[float]:
    """The model's five inputs: the order's own values, else the averages, else the default."""
    restaurant = order.restaurant_avg_delivery_time
    if restaurant is None:
        restaurant = RESTAURANT_AVG.get(order.restaurant_id, DEFAULT_AVG)
    driver = order.driver_avg_delivery_time
    if driver is None:
        driver = DRIVER_AVG.get(order.driver_id, DEFAULT_AVG)
    return [order.distance_km, order.is_peak_hour, order.order_value, restaurant, driver]


def prediction(minutes: float) -> Prediction:
    """A response for one predicted time."""
    return Prediction(
        predicted_delivery_time_min=minutes,
        confidence_interval_lower=max(minutes - INTERVAL_MIN, 0.0),
        confidence_interval_upper=minutes + INTERVAL_MIN,
        model_version=MODEL_VERSION,
        prediction_id=str(uuid.uuid4()),
    )


app = FastAPI(title="Delivery time prediction (tutorial)")


# Plain def, as FastAPI's docs say for code that blocks (sklearn's predict is CPU-bound and not
# awaitable): FastAPI runs it in its threadpool instead of stalling the event loop.
@app.post("/v1/predict", response_model=Prediction)
def predict(order: Order) -> Prediction:
    """Predict one order's delivery time."""
    minutes = float(MODEL.predict(np.array([features(order)]))[0])
    logger.info("predicted %.1f min for %s/%s", minutes, order.restaurant_id, order.driver_id)
    return prediction(minutes)


@app.post("/v1/predict/batch", response_model=BatchPrediction)
def predict_batch(batch: BatchRequest) -> BatchPrediction:
    """Predict many orders in one model call; predictions come back in input order."""
    minutes = MODEL.predict(np.array([features(order) for order in batch.orders]))
    logger.info("predicted %d orders", len(batch.orders))
    return BatchPrediction(
        predictions=[prediction(float(m)) for m in minutes], model_version=MODEL_VERSION
    )


@app.get("/readyz")
async def readyz() -> dict[str, str]:
    """Ready once the module is imported (the model is fitted or loaded by then)."""
    return {"status": "ready"}


@app.get("/health")
async def health() -> dict[str, str]:
    """Liveness and the model version."""
    return {"status": "ok", "model_version": MODEL_VERSION}


if __name__ == "__main__":
    # ``python -m loadtest.tutorial_app``: the import above fitted the model and, with
    # TUTORIAL_MODEL_PATH set, wrote it there for the workers to load.
    logger.info("model ready (%s)", os.environ.get("TUTORIAL_MODEL_PATH") or "not saved")
