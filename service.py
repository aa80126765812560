"""delivery-eta BentoML service: a thin HTTP adapter over ``models.serving``.

Start-up (module import, in the serving process before any worker) reads the settings once and
loads + verifies the model; any mismatch refuses to start with a one-line reason, because a
server that starts but cannot predict is worse than one that does not start.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Annotated, Any

import bentoml
from bentoml._internal.context import server_context
from pydantic import Field, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from models import metrics
from models.batching import AdaptiveBatcher, Overloaded
from models.drift import DriftMonitor
from models.feature_store import EmbeddedFeatureStore, FeatureStore, RedisFeatureStore
from models.http_guard import HttpGuardMiddleware
from models.instrumentation import Instrumentation
from models.lifecycle import resolve_serving_tag
from models.logs import configure_logging
from models.openapi import OpenAPIDocumentMiddleware
from models.prediction_log import PredictionLog, RedisPredictionLog, SQLitePredictionLog
from models.registry import ModelArtifactError, load_artifact
from models.request_context import RequestContextMiddleware, RequestInfo, annotate
from models.runtime import TreeliteRuntime
from models.schema import (
    FEATURE_NAMES,
    ORDER_EXAMPLE,
    BatchPrediction,
    Feedback,
    FeedbackReceipt,
    Order,
    Prediction,
)
from models.serving import Bounds, DeliveryTimePredictor
from models.settings import ServiceSettings
from models.shutdown import DrainingMiddleware
from models.shutdown import install as install_graceful_shutdown


def _refuse_to_start(reason: str) -> None:
    print(f"delivery-eta: refusing to start: {reason}", file=sys.stderr, flush=True)
    raise SystemExit(2)


try:
    SETTINGS = ServiceSettings()
except ValidationError as exc:
    _refuse_to_start(
        "invalid settings: "
        + "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in exc.errors()
        )
    )
configure_logging(SETTINGS.log_level)
SHUTDOWN = install_graceful_shutdown(SETTINGS.shutdown_drain_s)
try:
    ARTIFACT = load_artifact(resolve_serving_tag(SETTINGS.model_tag))
except ModelArtifactError as exc:
    _refuse_to_start(str(exc))
# Worker processes inherit this environment (BentoML's watchers copy it when `bentoml serve`
# starts them, after this import): pinning the resolved version here keeps every worker, even one
# respawned after a later promotion, on the model this server started with.
os.environ["DELIVERY_ETA_MODEL_TAG"] = ARTIFACT.tag

BatchOrders = Annotated[
    list[Order],
    Field(
        min_length=1,
        max_length=SETTINGS.max_batch_rows,
        json_schema_extra={
            "example": [
                ORDER_EXAMPLE,
                {
                    **ORDER_EXAMPLE,
                    "driver_id": "new_driver",
                    "distance_km": 7.9,
                    "is_peak_hour": 0,
                    "driver_avg_delivery_time": 31.0,
                },
            ]
        },
    ),
]


def _error(status: int, message: str, category: str, **headers: str) -> JSONResponse:
    annotate(error_category=category, error=message)
    return JSONResponse({"error": message}, status_code=status, headers=headers or None)


def _overloaded() -> JSONResponse:
    return _error(
        503,
        "service overloaded: prediction queue is over its latency budget, retry later",
        "overload",
        **{"Retry-After": "1"},
    )


async def _health(_: Request) -> JSONResponse:
    service: DeliveryETA = bentoml.get_current_service()
    return JSONResponse(service.health())


def _request_finished(
    info: RequestInfo, status: int, latency_ms: float, category: str | None
) -> None:
    if info.route.startswith("/v1/"):
        service: DeliveryETA | None = bentoml.get_current_service()
        if service is not None:
            service.instrumentation.request_finished(
                info.route, category, info.fields.get("invalid_fields", ())
            )


def _prediction_log() -> PredictionLog:
    retention_s = SETTINGS.prediction_log_retention_hours * 3600
    if SETTINGS.prediction_log_backend == "redis":
        return RedisPredictionLog(str(SETTINGS.redis_url), retention_s)
    return SQLitePredictionLog(SETTINGS.prediction_log_path, retention_s)


@bentoml.asgi_app(Starlette(routes=[Route("/health", _health, methods=["GET"])]), path="/")
@bentoml.service(
    name="delivery_eta",
    workers=SETTINGS.workers,
    traffic={"timeout": 30},
    logging={"access": {"enabled": SETTINGS.access_log}},
    labels={"owner": "delivery-eta"},
)
class DeliveryETA:
    """Delivery-time predictions with calibrated 90 % intervals (API version 1)."""

    # Declares the model so `bentoml build` packages it into the bento.
    model_ref = bentoml.models.BentoModel(ARTIFACT.tag)

    def __init__(self) -> None:
        self.started_at = time.time()
        self._store_seen_ready = False
        self.feature_store: FeatureStore
        if SETTINGS.feature_store_backend == "redis":
            self.feature_store = RedisFeatureStore(
                str(SETTINGS.redis_url), ARTIFACT.entities, SETTINGS.feature_store_timeout_ms / 1000
            )
        else:
            self.feature_store = EmbeddedFeatureStore(ARTIFACT.entities)
        self.instrumentation = Instrumentation(ARTIFACT.tag, self.feature_store.backend)
        self.instrumentation.model_loaded(
            stage=ARTIFACT.labels.get("stage", "unknown"),
            trained_at=str(ARTIFACT.metadata.get("registered_at", "unknown")),
            training_mae=float(ARTIFACT.metadata["metrics"]["holdout_mae"]),
        )
        batch_size = metrics.ADAPTIVE_BATCH_SIZE.labels(
            runner_name="delivery_eta",
            worker_index=str(server_context.worker_index),
            method_name="predict_rows",
            service_version=server_context.bento_version,
            service_name=server_context.bento_name or "delivery_eta",
        )
        batch_rows = metrics.BATCH_ROWS.labels(model_version=ARTIFACT.tag)

        def observe_batch(requests: int, rows: int) -> None:
            batch_size.observe(requests)
            batch_rows.observe(rows)

        model = (
            TreeliteRuntime(ARTIFACT.model, max_rows=SETTINGS.treelite_max_rows)
            if SETTINGS.model_runtime == "treelite"
            else ARTIFACT.model
        )
        self.predictor = DeliveryTimePredictor(
            model_version=ARTIFACT.tag,
            feature_store=self.feature_store,
            batcher=AdaptiveBatcher(
                model.predict_rows,
                max_batch_size=SETTINGS.max_batch_size,
                max_latency_ms=SETTINGS.max_latency_ms,
                observe_batch=observe_batch,
                native_threads=SETTINGS.model_threads,
                max_wait_ms=SETTINGS.max_batch_wait_ms,
            ),
            defaults=ARTIFACT.entities.defaults,
            bounds=Bounds(SETTINGS.prediction_floor_min, SETTINGS.prediction_ceiling_min),
            prediction_log=_prediction_log(),
            drift=DriftMonitor(
                ARTIFACT.metadata["reference_stats"], FEATURE_NAMES, SETTINGS.drift_window_rows
            ),
            instrumentation=self.instrumentation,
        )

    async def __is_ready__(self) -> bool:
        """Ready once the model is loaded (it is, if we got here) and the store has answered.

        After that, a store outage keeps the service ready (serving defaults) unless
        ``readiness_requires_store`` is set. Draining for shutdown is never ready.
        """
        if SHUTDOWN.draining:
            return False
        if await self.feature_store.check():
            self._store_seen_ready = True
            return True
        return self._store_seen_ready and not SETTINGS.readiness_requires_store

    def health(self) -> dict[str, Any]:
        """The GET /health document."""
        return {
            "status": "draining"
            if SHUTDOWN.draining
            else ("ok" if self.feature_store.state == "ready" else "degraded"),
            "model_version": ARTIFACT.tag,
            "model_stage": ARTIFACT.labels.get("stage"),
            "uptime_s": round(time.time() - self.started_at, 3),
            "feature_store": {
                "backend": self.feature_store.backend,
                "state": self.feature_store.state,
            },
            "prediction_log": {"backend": SETTINGS.prediction_log_backend},
        }

    @bentoml.api(route="/v1/predict", input_spec=Order, output_spec=Prediction)
    async def predict(self, **order: Any) -> Prediction | JSONResponse:
        """Predict one order's delivery time; the body is the order itself."""
        try:
            (prediction,) = await self.predictor.predict([Order.model_construct(**order)])
        except Overloaded:
            return _overloaded()
        return prediction

    @bentoml.api(route="/v1/predict/batch", output_spec=BatchPrediction)
    async def predict_batch(self, orders: BatchOrders) -> BatchPrediction | JSONResponse:
        """Predict many orders at once; predictions come back in input order."""
        try:
            predictions = await self.predictor.predict(orders)
        except Overloaded:
            return _overloaded()
        return BatchPrediction.model_construct(predictions=predictions, model_version=ARTIFACT.tag)

    @bentoml.api(route="/v1/feedback", input_spec=Feedback, output_spec=FeedbackReceipt)
    async def feedback(self, **body: Any) -> FeedbackReceipt | JSONResponse:
        """Report the actual delivery time of a prediction; sending it again changes nothing."""
        prediction_id, actual = body["prediction_id"], body["actual_delivery_time_min"]
        result = await self.predictor.feedback(prediction_id, actual)
        if result.record is None:
            return _error(
                404, f"unknown prediction_id {prediction_id} (expired or never made)", "not_found"
            )
        if result.status == "conflict":
            return _error(
                409,
                f"prediction_id {prediction_id} already has actual_delivery_time_min "
                f"{result.actual}",
                "conflict",
            )
        record = result.record
        return FeedbackReceipt(
            prediction_id=prediction_id,
            status="joined" if result.status == "joined" else "duplicate",
            model_version=record.model_version,
            predicted_delivery_time_min=record.predicted,
            actual_delivery_time_min=actual,
            absolute_error_min=abs(actual - record.predicted),
            within_interval=record.lower <= actual <= record.upper,
        )

    @bentoml.on_shutdown
    async def close(self) -> None:
        self.predictor.close()
        if self.predictor.prediction_log is not None:
            await self.predictor.prediction_log.close()
        await self.feature_store.close()


# First added = outermost: the request context (id, log line, metrics) also covers the guard's
# 413/415 answers, and while draining every answer closes its connection.
DeliveryETA.add_asgi_middleware(DrainingMiddleware)
DeliveryETA.add_asgi_middleware(RequestContextMiddleware, on_complete=_request_finished)
DeliveryETA.add_asgi_middleware(HttpGuardMiddleware, max_body_bytes=SETTINGS.max_body_bytes)
# /docs.json: BentoML's generated document, corrected once at start-up (models/openapi.py).
DeliveryETA.add_asgi_middleware(
    OpenAPIDocumentMiddleware, spec=lambda: DeliveryETA.openapi_spec.asdict()
)
