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
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from typing import Annotated, Any, NamedTuple

import bentoml
from bentoml import get_current_service  # bentoml.X is a lazy-module lookup: ~5 us a call
from pydantic import Field
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from framework_internals import (
    bind_api_methods,
    pin_environment_for_workers,
    start_request_duration_series,
)
from models.intervals import score_answer
from models.settings import ENV_PREFIX
from prediction_log import PredictionLogUnavailable, PredictionNotRecorded
from prediction_log.location import log_at_startup
from serving.inference_protocol.inputs import input_specs
from serving.inference_protocol.metadata import ServedModel
from serving.inference_protocol.paths import ROUTE_TEMPLATES as V2_ROUTES
from serving.pipeline.batching import Overloaded
from serving.pipeline.prediction_pipeline import AlreadyLabelled, UnknownPrediction
from serving.schema import (
    BatchPrediction,
    FeedbackReceipt,
    Prediction,
    batch_example,
    feedback_model,
    order_model,
)
from serving.server.edge.paths import UNMATCHED
from serving.server.inference_routes import ANY_METHOD, InferenceRoutes
from serving.server.wiring import install_server, wrap_service
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
from serving.telemetry.request_notes import RequestInfo, annotate

SETTINGS = load_settings()
configure_logging(SETTINGS.telemetry.log_level)
SHUTDOWN = install_server(SETTINGS)
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
        max_length=SETTINGS.batching.max_batch_rows,
        json_schema_extra={"example": batch_example(ARTIFACT.contract)},
    ),
]


# Seconds a client should wait before resending feedback the prediction log could not take.
FEEDBACK_RETRY_AFTER_S = 5


class ErrorAnswer(NamedTuple):
    """What a client gets for one domain error: ``{"error": message}`` with these."""

    status: int
    category: str
    """``error_category`` of the request's log line and of ``delivery_eta_errors_total``."""
    message: str
    """The ``error`` text; ``{exc}`` stands for the error's own text."""
    headers: dict[str, str]


ERROR_ANSWERS: dict[type[Exception], ErrorAnswer] = {
    # The model's queue is over its latency budget: shed now, the client may retry at once.
    Overloaded: ErrorAnswer(
        503, "overload", "service overloaded: {exc}, retry later", {"Retry-After": "1"}
    ),
    # The label is not lost if the client retries: the store (or the prediction's queued write)
    # comes back; a 500 would say the request itself was wrong.
    PredictionLogUnavailable: ErrorAnswer(
        503, "unavailable", "{exc}; retry later", {"Retry-After": str(FEEDBACK_RETRY_AFTER_S)}
    ),
    # Made by this worker but dropped (store failing, queue full): retrying cannot help, and
    # 404 would say it was never made.
    PredictionNotRecorded: ErrorAnswer(410, "not_recorded", "{exc}", {}),
    UnknownPrediction: ErrorAnswer(404, "not_found", "{exc}", {}),
    AlreadyLabelled: ErrorAnswer(409, "conflict", "{exc}", {}),
}
"""The one outcome -> answer table: each domain error the pipeline raises and its answer.
Routes catch :data:`ANSWERED_ERRORS` and answer with :func:`_error_answer`; any other
exception is BentoML's 500."""
ANSWERED_ERRORS = tuple(ERROR_ANSWERS)


def _error_answer(exc: Exception) -> JSONResponse:
    # The nearest class in the table (a subclass of a domain error is answered like it).
    status, category, message, headers = next(
        ERROR_ANSWERS[cls] for cls in type(exc).__mro__ if cls in ERROR_ANSWERS
    )
    text = message.format(exc=exc)
    annotate(error_category=category, error=text)
    return JSONResponse({"error": text}, status_code=status, headers=headers or None)


async def _health(_: Request) -> JSONResponse:
    service: DeliveryETA = get_current_service()
    # Ask the store now: this worker may have had no lookup since it failed or recovered, and
    # /health must not depend on which worker answers it.
    await service.feature_store.check()
    return JSONResponse(service.health())


async def _contract(_: Request) -> JSONResponse:
    # What tools (canary, load tests, warm-up) build their request bodies from.
    return JSONResponse(CONTRACT_DOCUMENT)


async def _is_ready() -> bool:
    service: DeliveryETA = get_current_service()
    return await service.__is_ready__()


async def _predict_columns(orders: Any) -> Any:
    service: DeliveryETA = get_current_service()
    return await service.pipeline.predict_columns(orders)


def _server_version() -> str:
    # Installed in a checkout (uv sync); a bento copies the source without package metadata.
    try:
        return package_version("delivery-eta")
    except PackageNotFoundError:
        return "unknown"


# The Open Inference Protocol (v2) beside /v1, on the same pipeline (docs/inference-protocol.md).
V2 = InferenceRoutes(
    model=ServedModel.of_tag(ARTIFACT.tag, "scikit-learn", input_specs(Order.model_json_schema())),
    server_name="delivery_eta",
    server_version=_server_version(),
    max_rows=SETTINGS.batching.max_batch_rows,
    is_ready=_is_ready,
    predict_columns=_predict_columns,
    answered_errors=ANSWERED_ERRORS,
    error_answer=_error_answer,
)


def _request_finished(
    info: RequestInfo, status: int, latency_ms: float, category: str | None
) -> None:
    # An unknown path arrives here as /unmatched (serving.server.edge.paths): counted under that label.
    if info.route.startswith("/v1/") or info.route == UNMATCHED or info.route in V2_ROUTES:
        service: DeliveryETA | None = get_current_service()
        if service is not None:
            service.metrics.request_finished(
                info.route, category, info.fields.get("invalid_fields", ())
            )


@bentoml.asgi_app(
    Starlette(
        routes=[
            *V2.routes(),  # first: the infer route is matched per request (inference_routes.py)
            Route("/health", _health, methods=["GET"]),
            Route("/contract", _contract, methods=["GET"]),
            # The edge's collapsed paths, any method: 404, in the protocol's body for /v2/.
            Route(UNMATCHED, V2.not_found, methods=list(ANY_METHOD)),
        ]
    ),
    path="/",
)
@bentoml.service(
    name="delivery_eta",
    workers=SETTINGS.server.workers,
    traffic={"timeout": 30},
    logging={"access": {"enabled": SETTINGS.telemetry.access_log}},
    # Tracing off = every URL excluded: BentoML's OpenTelemetry middleware then skips the request.
    **({} if SETTINGS.telemetry.tracing else {"tracing": {"excluded_urls": [".*"]}}),
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
        log_at_startup(SETTINGS.prediction_log, SETTINGS.redis_url)

    def __init__(self) -> None:
        self.started_at = time.time()
        self.feature_store = build_feature_store(SETTINGS, ARTIFACT)
        self.metrics = build_metrics(ARTIFACT, self.feature_store, CHALLENGER, FIELD_LABELS)
        # BentoML starts its request counter at 0 but not the latency histogram beside it:
        # without this, a pod's first scrape interval never reaches the latency panels.
        start_request_duration_series()
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
        # BentoML looks each API method up per request and rebuilds its callable every time.
        bind_api_methods(self)
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
        return (
            self.feature_store.state == "degraded" and not SETTINGS.server.readiness_requires_store
        )

    def health(self) -> dict[str, Any]:
        """The GET /health document."""
        log = self.pipeline.prediction_log
        prediction_log = log.status() if log is not None else {"backend": None, "state": None}
        healthy = self.feature_store.state == "ready" and prediction_log["state"] in ("ready", None)
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
            "fraction": SETTINGS.shadow.fraction,
            "queue_rows": shadow.queue_rows,
            "queue_max_rows": SETTINGS.shadow.queue_rows,
        }

    @bentoml.api(route="/v1/predict", input_spec=Order, output_spec=Prediction)
    async def predict(self, **order: Any) -> Prediction | JSONResponse:
        """Predict one order's delivery time; the body is the order itself."""
        try:
            batch = await self.pipeline.predict([Order.model_construct(**order)])
        except ANSWERED_ERRORS as exc:
            return _error_answer(exc)
        (prediction,) = batch.predictions()
        return prediction

    @bentoml.api(route="/v1/predict/batch", output_spec=BatchPrediction)
    async def predict_batch(self, orders: BatchOrders) -> BatchPrediction | Response:
        """Predict many orders at once; predictions come back in input order."""
        try:
            batch = await self.pipeline.predict(orders)
        except ANSWERED_ERRORS as exc:
            return _error_answer(exc)
        # Serialised here in one pass (the same document BatchPrediction describes).
        return Response(batch.batch_json(), media_type="application/json")

    @bentoml.api(route="/v1/feedback", input_spec=Feedback, output_spec=FeedbackReceipt)
    async def feedback(self, **body: Any) -> FeedbackReceipt | JSONResponse:
        """Report the actual delivery time of a prediction; sending it again changes nothing."""
        prediction_id, actual = body["prediction_id"], body["actual_delivery_time_min"]
        try:
            result = await self.pipeline.feedback(prediction_id, actual)
        except ANSWERED_ERRORS as exc:
            return _error_answer(exc)
        record = result.record
        assert record is not None  # an unknown id raised UnknownPrediction
        score = score_answer(record.predicted, record.lower, record.upper, actual)
        return FeedbackReceipt(
            prediction_id=prediction_id,
            status="joined" if result.status == "joined" else "duplicate",
            model_version=record.model_version,
            predicted_delivery_time_min=record.predicted,
            actual_delivery_time_min=actual,
            absolute_error_min=score.absolute_error,
            within_interval=score.within_interval,
        )

    @bentoml.on_shutdown
    async def close(self) -> None:
        await self.pipeline.close_shadow()
        self.pipeline.close()
        if self.pipeline.prediction_log is not None:
            await self.pipeline.prediction_log.close()
        await self.feature_store.close()


# The HTTP edge and the middleware stack (serving/server/wiring.py), once the routes are known.
wrap_service(
    DeliveryETA,
    SETTINGS,
    mounted_paths=["/health", "/contract", *V2.paths()],  # the Starlette app mounted at "/"
    request_models=[Order, Feedback],
    model_tag=ARTIFACT.tag,
    on_request_finished=_request_finished,
)
