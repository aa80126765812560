"""Start-up of the serving process: settings, the verified model, and each worker's pipeline.

``service.py`` calls these once per process. Anything wrong -- an invalid setting, a missing or
mismatched model, an unusable prediction log path -- refuses to start with a one-line reason
(exit 2), because a server that starts but cannot predict is worse than one that does not start.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any, NoReturn

from pydantic import ValidationError

from models.cohorts import Cohorts
from models.contract.compat import challenger_input_problems
from models.features import FeatureAssembler
from models.runtime_selection import select_runtime
from models.store.artifact import ModelArtifact, ModelArtifactError, load_artifact
from models.store.stages import LifecycleError, resolve_challenger, resolve_serving_tag
from prediction_log import (
    LogObserver,
    PredictionLog,
    RedisPredictionLog,
    SQLitePredictionLog,
    unusable_reason,
)
from serving.pipeline.batching import AdaptiveBatcher
from serving.pipeline.feature_store import (
    EmbeddedFeatureStore,
    FeatureStore,
    RedisFeatureStore,
    shared_entity_keys,
)
from serving.pipeline.model_calls import Bounds, ChampionCalls
from serving.pipeline.prediction_pipeline import PredictionPipeline
from serving.pipeline.shadow import ChallengerInputs, ShadowScorer
from serving.settings import ServiceSettings, setting_name
from serving.telemetry.drift_monitor import DriftMonitor
from serving.telemetry.labels import NO_FIELDS, FieldLabels
from serving.telemetry.metrics import MetricsRecorder
from serving.telemetry.prediction_log_metrics import PredictionLogMetrics
from serving.telemetry.roles import CHALLENGER, CHAMPION

logger = logging.getLogger(__name__)


def refuse_to_start(reason: str) -> NoReturn:
    """Print one line saying why and exit 2."""
    print(f"delivery-eta: refusing to start: {reason}", file=sys.stderr, flush=True)
    raise SystemExit(2)


class refusing:  # lower case: a context manager, named like contextlib.suppress
    """Refuse to start if the block raises one of ``errors``: the reason is ``prefix`` and the
    error's own words, or ``describe(error)``. Every start-up check that loads something goes
    through it, so each refusal stays one line of the same shape."""

    def __init__(
        self,
        *errors: type[Exception],
        prefix: str = "",
        describe: Callable[[Any], str] = str,
    ) -> None:
        self.errors = errors
        self.prefix = prefix
        self.describe = describe

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, _: Any
    ) -> None:
        if error is not None and isinstance(error, self.errors):
            refuse_to_start(self.prefix + self.describe(error))


def _invalid_settings(exc: ValidationError) -> str:
    # Each setting by its flat name, as before the settings were grouped (shadow_fraction).
    return "; ".join(f"{setting_name(e['loc']) or 'settings'}: {e['msg']}" for e in exc.errors())


def load_settings() -> ServiceSettings:
    """The settings from the environment, or a refusal naming every invalid one."""
    with refusing(ValidationError, prefix="invalid settings: ", describe=_invalid_settings):
        settings = ServiceSettings()
    return settings


def _verified(tag: str, settings: ServiceSettings) -> ModelArtifact:
    """The model ``tag`` loaded and verified, its runtime probed with the settings' choice (a
    compiled library loaded and checked against sklearn; the worker announces it later)."""
    artifact = load_artifact(tag)
    select_runtime(
        artifact,
        settings.model_runtime,
        treelite_max_rows=settings.treelite_max_rows,
        announce=False,
    )
    return artifact


def load_served_model(settings: ServiceSettings) -> ModelArtifact:
    """The pinned model, else the ``stage=production`` one, loaded and verified; or a refusal.

    Its runtime is checked here too: this runs in the serving process before any worker
    starts, so an unusable library stops the server with exit 2 instead of crash-looping every
    worker in ``build_pipeline``.
    """
    with refusing(ModelArtifactError):
        artifact = _verified(resolve_serving_tag(settings.model_tag), settings)
    shared = shared_entity_keys(artifact.contract)
    if shared is not None and settings.feature_store.backend == "redis":
        refuse_to_start(f"model {artifact.tag}: {shared}")
    return artifact


SHADOW_SETTING = "shadow model (DELIVERY_ETA_SHADOW_MODEL_TAG): "
"""How a refusal about the challenger starts: it names the setting to fix."""


def load_shadow_model(settings: ServiceSettings, served: ModelArtifact) -> ModelArtifact | None:
    """The challenger ``shadow_model_tag`` names, loaded and verified like the served model
    (its runtime probed too); None without one; a refusal naming the setting otherwise.

    A challenger whose contract needs a field the requests to ``served`` do not carry (or
    values its API does not guarantee) is refused too, naming the field: it would otherwise
    score garbage, silently (``models.contract.compat.challenger_input_problems``).
    """
    if settings.shadow.model_tag is None:
        return None
    with refusing(ModelArtifactError, LifecycleError, prefix=SHADOW_SETTING):
        challenger = resolve_challenger(settings.shadow.model_tag)
        # Which model "candidate" resolved to, and why, in the start-up log (docs/shadow.md).
        logger.info("shadow challenger %s: %s", challenger.tag, challenger.reason)
        artifact = _verified(challenger.tag, settings)
    problems = challenger_input_problems(served.contract, artifact.contract)
    if problems:
        refuse_to_start(
            f"{SHADOW_SETTING}{artifact.tag} cannot score the requests {served.tag} serves: "
            + "; ".join(problems)
        )
    return artifact


def build_feature_store(settings: ServiceSettings, artifact: ModelArtifact) -> FeatureStore:
    """The online feature store the settings name, for ``artifact``'s feature snapshot."""
    if settings.feature_store.backend == "redis":
        return RedisFeatureStore(
            str(settings.redis_url),
            artifact.entities,
            artifact.contract,
            settings.feature_store.timeout_ms / 1000,
        )
    return EmbeddedFeatureStore(artifact.entities, artifact.contract)


def check_prediction_log(settings: ServiceSettings) -> None:
    """Refuse to start if the SQLite prediction log's path is unusable (not creatable,
    read-only, not a SQLite file).

    Called in the serving process before any worker starts, so a bad path stops the server
    with one line instead of crash-looping every worker in ``build_prediction_log``. A Redis
    log is not probed: Redis being down is an outage the log rides out, not a wrong setting.
    """
    if settings.prediction_log.backend != "sqlite":
        return
    reason = unusable_reason(
        settings.prediction_log.path, settings.prediction_log.timeout_ms / 1000
    )
    if reason is not None:
        refuse_to_start(
            f"prediction log {settings.prediction_log.path} is unusable"
            f" (DELIVERY_ETA_PREDICTION_LOG_PATH): {reason}"
        )


def build_prediction_log(
    settings: ServiceSettings, observer: LogObserver | None = None
) -> PredictionLog:
    """Where predictions wait for their delayed labels, with the bounds the settings give."""
    retention_s = settings.prediction_log.retention_hours * 3600
    timeout_s = settings.prediction_log.timeout_ms / 1000
    if settings.prediction_log.backend == "redis":
        return RedisPredictionLog(
            str(settings.prediction_log.redis_url or settings.redis_url),
            retention_s,
            key_prefix=settings.prediction_log.redis_prefix,
            max_queue_rows=settings.prediction_log.queue_rows,
            sample_rate=settings.prediction_log.batch_sample_rate,
            timeout_s=timeout_s,
            observer=observer,
        )
    return SQLitePredictionLog(
        settings.prediction_log.path,
        retention_s,
        max_bytes=int(settings.prediction_log.max_mib * 2**20),
        max_queue_rows=settings.prediction_log.queue_rows,
        sample_rate=settings.prediction_log.batch_sample_rate,
        timeout_s=timeout_s,
        observer=observer,
        shared=settings.server.workers > 1,
    )


def build_metrics(
    artifact: ModelArtifact,
    feature_store: FeatureStore,
    challenger: ModelArtifact | None = None,
    field_labels: FieldLabels = NO_FIELDS,
) -> MetricsRecorder:
    """This worker's metric recorder, with the loaded models published (``model_info``);
    ``field_labels``: the served API's request fields (``FieldLabels.of``)."""
    metrics = MetricsRecorder(
        artifact.tag,
        feature_store.backend,
        None if challenger is None else challenger.tag,
        contract=artifact.contract,
        field_labels=field_labels,
    )
    for role, loaded in ((CHAMPION, artifact), (CHALLENGER, challenger)):
        if loaded is not None:
            metrics.model_loaded(
                stage=loaded.labels.get("stage", "unknown"),
                trained_at=str(loaded.metadata.get("registered_at", "unknown")),
                training_mae=float(loaded.metadata["metrics"]["holdout_mae"]),
                role=role,
            )
    return metrics


def build_pipeline(
    settings: ServiceSettings,
    artifact: ModelArtifact,
    feature_store: FeatureStore,
    metrics: MetricsRecorder,
    observe_batch: Callable[[int, int], None] | None = None,
    challenger: ModelArtifact | None = None,
) -> PredictionPipeline:
    """One worker's request pipeline, built in the order a request meets it: store ->
    assembly -> batcher -> model -> clamp and observe (per call) -> with a ``challenger``, the
    shadow -> prediction log.

    ``observe_batch(requests, rows)`` is called for every model call (batch-size metrics).
    """
    try:
        model = select_runtime(
            artifact, settings.model_runtime, treelite_max_rows=settings.treelite_max_rows
        )
        challenger_model = (
            None
            if challenger is None
            else select_runtime(
                challenger, settings.model_runtime, treelite_max_rows=settings.treelite_max_rows
            )
        )
    except ModelArtifactError as exc:
        refuse_to_start(str(exc))

    bounds = Bounds(settings.prediction_floor_min, settings.prediction_ceiling_min)
    cohorts = Cohorts(artifact.contract)
    batcher = AdaptiveBatcher(
        model.predict_rows,
        max_batch_size=settings.batching.max_batch_size,
        max_latency_ms=settings.batching.max_latency_ms,
        on_call=ChampionCalls(
            bounds,
            cohorts,
            metrics,
            DriftMonitor(
                artifact.metadata["reference_stats"],
                artifact.contract.feature_names,
                settings.telemetry.drift_window_rows,
                artifact.metadata.get("cohort_reference"),
                cohorts,
            ),
        ),
        observe_batch=observe_batch,
        native_threads=settings.model_threads,
        max_wait_ms=settings.batching.max_batch_wait_ms,
    )
    prediction_log = build_prediction_log(
        settings, PredictionLogMetrics(settings.prediction_log.backend)
    )
    shadow = None
    if challenger is not None and challenger_model is not None:
        shadow = ShadowScorer(
            challenger_model.predict_rows,
            model_version=challenger.tag,
            sink=prediction_log.append,
            clamp=bounds.clamp,
            fraction=settings.shadow.fraction,
            max_queue_rows=settings.shadow.queue_rows,
            interval_s=settings.shadow.interval_ms / 1000,
            overloaded=batcher.overloaded,
            metrics=metrics,
            nice=settings.shadow.nice,
            native_threads=settings.model_threads,
            # load_shadow_model refused a challenger the requests cannot feed.
            inputs=ChallengerInputs.needed(
                artifact.contract, artifact.entities, challenger.contract, challenger.entities
            ),
        )
    return PredictionPipeline(
        model_version=artifact.tag,
        feature_store=feature_store,
        batcher=batcher,
        assembler=FeatureAssembler(artifact.contract),
        defaults=artifact.entities.defaults,
        prediction_log=prediction_log,
        metrics=metrics,
        shadow=shadow,
    )
