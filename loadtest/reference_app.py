"""The plain reference for the benchmark: the same model behind a bare FastAPI + uvicorn app.

Written the way a typical user would serve a scikit-learn model: one ``predict_rows`` call per
request (no batching), the same embedded entity-feature lookup and feature assembly as the
service, the same request/response JSON at ``POST /v1/predict``. It has none of the service's
production extras (prediction log, drift, Prometheus metrics, JSON request log, clamping).

    BENTOML_HOME=... DELIVERY_ETA_MODEL_TAG=delivery_eta:latest OMP_NUM_THREADS=1 \
        python -m uvicorn loadtest.reference_app:app --host 127.0.0.1 --port 8000 \
        --workers 2 --no-access-log

``loadtest/bench`` starts it like that, with the service's worker count and the same one
native (OpenMP) thread per worker the service uses, so the comparison isolates the serving
stack and batching rather than thread oversubscription.
"""

from __future__ import annotations

import time
import uuid

from fastapi import FastAPI

from models.features import assemble_features
from models.settings import ModelSettings
from models.store.artifact import load_artifact
from serving.pipeline.feature_store import EmbeddedFeatureStore
from serving.schema import Order, Prediction

ARTIFACT = load_artifact(ModelSettings().model_tag or "delivery_eta:latest")
MODEL = ARTIFACT.model
STORE = EmbeddedFeatureStore(ARTIFACT.entities)
DEFAULTS = ARTIFACT.entities.defaults

app = FastAPI(title="delivery-eta plain reference")


@app.post("/v1/predict", response_model=Prediction)
async def predict(order: Order) -> Prediction:
    """One order in, one model call, one prediction out."""
    started = time.perf_counter()
    online = await STORE.lookup([order.restaurant_id], [order.driver_id])
    features, sources = assemble_features([order], online, DEFAULTS)
    point, lower, upper = MODEL.predict_rows(features)[0].tolist()
    return Prediction(
        predicted_delivery_time_min=point,
        confidence_interval_lower=lower,
        confidence_interval_upper=upper,
        model_version=ARTIFACT.tag,
        prediction_id=str(uuid.uuid4()),
        latency_ms=round((time.perf_counter() - started) * 1000.0, 3),
        features_source=sources[0],
    )


@app.get("/readyz")
async def readyz() -> dict[str, str]:
    """Ready as soon as the module imported (the model is loaded at import)."""
    return {"status": "ready"}


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok", "model_version": ARTIFACT.tag}
