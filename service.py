"""delivery-eta BentoML service: a thin HTTP adapter over the ``serving`` package.

Start-up (module import, in the serving process and again in each worker) reads the settings
once and loads + verifies the model (``serving.startup``); any mismatch refuses to start with a
one-line reason. The model's feature contract is the API: the request models are built from it
(``serving.schema``) and ``GET /contract`` publishes it for tools. Each worker then builds its
own request pipeline (``serving.pipeline``).
"""

from __future__ import annotations

import gc
import time
from typing import Annotated, Any

import bentoml
from pydantic import Field
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from framework_internals import (
    bentoml_fixed_paths,
    pin_environment_for_workers,
    release_request_timers,
    swagger_ui_assets,
)
from models.settings import ENV_PREFIX
from serving.accept import install as install_greedy_accept
from serving.edge import install as install_http_edge
from serving.edge import raise_open_files_limit
from serving.edge.connection import EdgeLimits
from serving.edge.paths import UNMATCHED, known_paths
from serving.edge.refusals import count_refusal, publish_reasons
from serving.middleware.auth import BearerTokenMiddleware
from serving.middleware.body_guard import HttpGuardMiddleware
from serving.middleware.docs_page import DocsPageMiddleware, service_info
from serving.middleware.openapi import OpenAPIDocumentMiddleware
from serving.middleware.request_context import RequestContextMiddleware, RequestInfo, annotate
from serving.middleware.scrape_cache import METRICS_PATH, ScrapeCacheMiddleware
from serving.pipeline.batching import Overloaded
from serving.pipeline.prediction_log import PredictionLogUnavailable
from serving.pipeline.prediction_log.location import log_at_startup
from serving.schema import (
    BatchPrediction,
    FeedbackReceipt,
    Prediction,
    batch_example,
    feedback_model,
    order_model,
)
from serving.shutdown import DrainingMiddleware
from serving.shutdown import install as install_graceful_shutdown
from serving.startup import (
    build_feature_store,
    build_metrics,
    build_pipeline,
    check_prediction_log,
    load_served_model,
    load_settings,
    load_shadow_model,
)
from serving.telemetry.labels import FieldLabels
from serving.telemetry.logs import configure_logging, use_field_labels

SETTINGS = load_settings()
configure_logging(SETTINGS.log_level)
SHUTDOWN = install_graceful_shutdown(SETTINGS.shutdown_drain_s)
install_greedy_accept(SETTINGS.accept_batch, SETTINGS.workers)
# BentoML's request timeout kept each request's timer alive 30 s: gen-2 collections stalled a
# worker for tens of ms every few seconds under sustained load (docs/performance.md).
release_request_timers()
if SETTINGS.raise_open_files_limit:
    raise_open_files_limit()
ARTIFACT = load_served_model(SETTINGS)
CHALLENGER = load_shadow_model(SETTINGS, ARTIFACT)
check_prediction_log(SETTINGS)

# The served model's contract is the API: request models, their labels in metrics, /contract.
Order = order_model(ARTIFACT.contract)
Feedback = feedback_model(ARTIFACT.contract)
FIELD_LABELS = FieldLabels.of(Order, Feedback)
use_field_labels(FIELD_LABELS)
CONTRACT_DOCUMENT = ARTIFACT.contract.metadata()

BatchOrders = Annotated[
    list[Order],  # type: ignore[valid-type]
    Field(
        min_length=1,
        max_length=SETTINGS.max_batch_rows,
        json_schema_extra={"example": batch_example(ARTIFACT.contract)},
    ),
]


def _error(status: int, message: str, category: str, **headers: str) -> JSONResponse:
    annotate(error_category=category, error=message)
    return JSONResponse({"error": message}, status_code=status, headers=headers or None)


# Seconds a client should wait before resending feedback the prediction log could not take.
FEEDBACK_RETRY_AFTER_S = 5


def _overloaded() -> JSONResponse:
    return _error(
        503,
        "service overloaded: prediction queue is over its latency budget, retry later",
        "overload",
        **{"Retry-After": "1"},
    )


async def _health(_: Request) -> JSONResponse:
    service: DeliveryETA = bentoml.get_current_service()
    # Ask the store now: this worker may have had no lookup since it failed or recovered, and
    # /health must not depend on which worker answers it.
    await service.feature_store.check()
    return JSONResponse(service.health())


async def _contract(_: Request) -> JSONResponse:
    # What tools (canary, load tests, warm-up) build their request bodies from.
    return JSONResponse(CONTRACT_DOCUMENT)


def _request_finished(
    info: RequestInfo, status: int, latency_ms: float, category: str | None
) -> None:
    # An unknown path arrives here as /unmatched (serving.edge.paths): counted under that label.
    if info.route.startswith("/v1/") or info.route == UNMATCHED:
        service: DeliveryETA | None = bentoml.get_current_service()
        if service is not None:
            service.metrics.request_finished(
                info.route, category, info.fields.get("invalid_fields", ())
            )


@bentoml.asgi_app(
    Starlette(
        routes=[
            Route("/health", _health, methods=["GET"]),
            Route("/contract", _contract, methods=["GET"]),
        ]
    ),
    path="/",
)
@bentoml.service(
    name="delivery_eta",
    workers=SETTINGS.workers,
    traffic={"timeout": 30},
    logging={"access": {"enabled": SETTINGS.access_log}},
    # Tracing off = every URL excluded: BentoML's OpenTelemetry middleware then skips the request.
    **({} if SETTINGS.tracing else {"tracing": {"excluded_urls": [".*"]}}),
    labels={"owner": "delivery-eta"},
)
class DeliveryETA:
    """Delivery-time predictions with calibrated 90 % intervals (API version 1)."""

    # Declares the model so `bentoml build` packages it into the bento.
    model_ref = bentoml.models.BentoModel(ARTIFACT.tag)
    if CHALLENGER is not None and CHALLENGER.tag != ARTIFACT.tag:
        # Built with a shadow configured, the bento packs the challenger too: the image's store
        # then holds both (`make bento SHADOW_MODEL_TAG=...`, docs/shadow.md).
        challenger_ref = bentoml.models.BentoModel(CHALLENGER.tag)

    @bentoml.on_deployment
    def pin_served_model() -> None:
        """Keep every worker, even one respawned after a later promotion, on this model.

        Runs once in the serving process, before BentoML starts the workers; they re-import
        this module and resolve the model again, so they get the concrete version resolved
        here rather than whatever is production by then.
        """
        pin_environment_for_workers(f"{ENV_PREFIX}MODEL_TAG", ARTIFACT.tag)
        if CHALLENGER is not None:  # "candidate" too: workers score with the one resolved here
            pin_environment_for_workers(f"{ENV_PREFIX}SHADOW_MODEL_TAG", CHALLENGER.tag)

    @bentoml.on_deployment
    def name_prediction_log() -> None:
        """Say once, in the serving process, which prediction log this instance writes (and
        whether the old shared default still holds predictions): docs/prediction-log.md."""
        log_at_startup(SETTINGS)

    def __init__(self) -> None:
        self.started_at = time.time()
        self.feature_store = build_feature_store(SETTINGS, ARTIFACT)
        self.metrics = build_metrics(ARTIFACT, self.feature_store, CHALLENGER, FIELD_LABELS)
        worker = bentoml.server_context
        self.pipeline = build_pipeline(
            SETTINGS,
            ARTIFACT,
            self.feature_store,
            self.metrics,
            observe_batch=self.metrics.batch_observer(
                worker.worker_index, worker.bento_name or "delivery_eta", worker.bento_version
            ),
            challenger=CHALLENGER,
        )
        # Everything built so far (modules, model, settings) lives as long as the worker: move it
        # out of the collector's sight, so full collections under load scan only request garbage.
        gc.collect()
        gc.freeze()

    @bentoml.on_startup
    async def probe_feature_store(self) -> None:
        """Ask the store once as the worker starts: a probe may reach any worker, and each one's
        readiness must know whether the store has ever answered it."""
        await self.feature_store.check()

    async def __is_ready__(self) -> bool:
        """Ready once the model is loaded (it is, if we got here) and the store has answered.

        After that (the store is then ``degraded``, not ``unavailable``), a store outage keeps
        the service ready, serving defaults, unless ``readiness_requires_store`` is set.
        Draining for shutdown is never ready.
        """
        if SHUTDOWN.draining:
            return False
        if await self.feature_store.check():
            return True
        return self.feature_store.state == "degraded" and not SETTINGS.readiness_requires_store

    def health(self) -> dict[str, Any]:
        """The GET /health document."""
        log = self.pipeline.prediction_log
        prediction_log = log.status() if log is not None else {"backend": None, "state": None}
        healthy = self.feature_store.state == "ready" and prediction_log["state"] != "failing"
        return {
            "status": "draining" if SHUTDOWN.draining else ("ok" if healthy else "degraded"),
            "model_version": ARTIFACT.tag,
            "model_stage": ARTIFACT.labels.get("stage"),
            "shadow": self._shadow_status(),
            "uptime_s": round(time.time() - self.started_at, 3),
            "feature_store": {
                "backend": self.feature_store.backend,
                "state": self.feature_store.state,
            },
            "prediction_log": prediction_log,
        }

    def _shadow_status(self) -> dict[str, Any] | None:
        shadow = self.pipeline.shadow
        if shadow is None:
            return None
        return {
            "model_version": shadow.model_version,
            "fraction": SETTINGS.shadow_fraction,
            "queue_rows": shadow.queue_rows,
            "queue_max_rows": SETTINGS.shadow_queue_rows,
        }

    @bentoml.api(route="/v1/predict", input_spec=Order, output_spec=Prediction)
    async def predict(self, **order: Any) -> Prediction | JSONResponse:
        """Predict one order's delivery time; the body is the order itself."""
        try:
            batch = await self.pipeline.predict([Order.model_construct(**order)])
        except Overloaded:
            return _overloaded()
        (prediction,) = batch.predictions()
        return prediction

    @bentoml.api(route="/v1/predict/batch", output_spec=BatchPrediction)
    async def predict_batch(self, orders: BatchOrders) -> BatchPrediction | Response:
        """Predict many orders at once; predictions come back in input order."""
        try:
            batch = await self.pipeline.predict(orders)
        except Overloaded:
            return _overloaded()
        # Serialised here in one pass (the same document BatchPrediction describes).
        return Response(batch.batch_json(), media_type="application/json")

    @bentoml.api(route="/v1/feedback", input_spec=Feedback, output_spec=FeedbackReceipt)
    async def feedback(self, **body: Any) -> FeedbackReceipt | JSONResponse:
        """Report the actual delivery time of a prediction; sending it again changes nothing."""
        prediction_id, actual = body["prediction_id"], body["actual_delivery_time_min"]
        try:
            result = await self.pipeline.feedback(prediction_id, actual)
        except PredictionLogUnavailable as exc:
            # The label is not lost if the client retries: the store (or the prediction's
            # queued write) comes back; a 500 would say the request itself was wrong.
            return _error(
                503,
                f"{exc}; retry later",
                "unavailable",
                **{"Retry-After": str(FEEDBACK_RETRY_AFTER_S)},
            )
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
        await self.pipeline.close_shadow()
        self.pipeline.close()
        if self.pipeline.prediction_log is not None:
            await self.pipeline.prediction_log.close()
        await self.feature_store.close()


# Outside all of BentoML's app (its request metrics label raw paths): unknown paths collapse to
# one label, and every connection is held to the size, time and keep-alive limits.
install_http_edge(
    EdgeLimits(
        max_request_target_bytes=SETTINGS.max_request_target_bytes,
        max_header_bytes=SETTINGS.max_header_bytes,
        header_timeout_s=SETTINGS.header_timeout_s,
        body_timeout_s=SETTINGS.body_timeout_s,
        max_requests_per_connection=SETTINGS.max_requests_per_connection,
    ),
    known_paths(
        bentoml_fixed_paths(),
        (api.route for api in DeliveryETA.apis.values()),
        ["/health", "/contract"],  # the Starlette app mounted at "/"
    ),
    count_refusal,
)
publish_reasons()

# First added = outermost: the request context (id, log line, metrics) also covers the 401s and
# the guard's 413/415 answers, and while draining every answer closes its connection.
DeliveryETA.add_asgi_middleware(DrainingMiddleware)
DeliveryETA.add_asgi_middleware(RequestContextMiddleware, on_complete=_request_finished)
# Before anything reads a body or renders metrics: a 401 costs nothing (docs/security.md).
DeliveryETA.add_asgi_middleware(
    BearerTokenMiddleware,
    tokens={"/v1/feedback": SETTINGS.feedback_token, METRICS_PATH: SETTINGS.metrics_token},
)
DeliveryETA.add_asgi_middleware(ScrapeCacheMiddleware, max_age_s=SETTINGS.metrics_cache_s)
DeliveryETA.add_asgi_middleware(
    HttpGuardMiddleware,
    max_body_bytes=SETTINGS.max_body_bytes,
    # No valid body has an object with more keys than a request model has fields.
    max_object_keys=max(len(model.model_fields) for model in (Order, Feedback)),
    refused=count_refusal,
)


def _service_info() -> dict[str, Any]:
    # Called as the worker's app starts: BentoML sets the bento version after this import.
    return service_info(ARTIFACT.tag, bentoml.server_context.bento_version)


# /docs.json: BentoML's generated document, corrected once at start-up (serving/middleware/openapi.py).
DeliveryETA.add_asgi_middleware(
    OpenAPIDocumentMiddleware, spec=lambda: DeliveryETA.openapi_spec.asdict(), info=_service_info
)
# /: the service's own docs page over that document, nothing loaded from outside the host.
DeliveryETA.add_asgi_middleware(DocsPageMiddleware, info=_service_info, assets=swagger_ui_assets())
