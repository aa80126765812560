"""The service's one settings object, read once at start-up from DELIVERY_ETA_* variables.

``service.py`` builds it once; nothing else in the serving process reads the environment.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, RedisDsn, SecretStr, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from models.settings import ENV_PREFIX, ModelSettings
from prediction_log.settings import PredictionLogSettings


def available_cpus(cpu_max: Path = Path("/sys/fs/cgroup/cpu.max")) -> int:
    """CPUs this process may use: its CPU affinity, capped by a cgroup v2 CPU quota (a container
    limit of 1500m gives 2), since ``os.cpu_count()`` reports the node's cores inside a pod."""
    cpus = len(os.sched_getaffinity(0))
    try:
        quota, period = cpu_max.read_text().split()
    except (OSError, ValueError):
        return cpus
    if quota == "max":
        return cpus
    return max(1, min(cpus, math.ceil(int(quota) / int(period))))


class _Group(BaseSettings):
    """One group of the service's settings, read from the environment under its own prefix."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)


class ServerSettings(_Group):
    """The HTTP server: worker processes, accepting, the drain, readiness, and the limits every
    connection and request is held to (``serving/server/``, docs/http-edge.md)."""

    workers: int = Field(default_factory=available_cpus, ge=1, le=64)
    """BentoML worker processes; each loads the model and batches on its own. Default: one per
    CPU this process may use (docs/performance.md measures 1, 2 and 3 workers on 2 cores)."""

    accept_batch: int = Field(default=64, ge=0, le=4096)
    """Most connections a worker accepts each time its listening socket is ready (it takes its
    share of the queue, queue length / workers); 0 leaves accepting to the event loop (uvloop
    then takes one per loop iteration: see serving/server/accept.py)."""

    shutdown_drain_s: float = Field(default=5.0, ge=0, le=120)
    """On SIGTERM, seconds to keep serving while reporting not-ready before stopping (and, when
    the whole server stops, closing the listener); load balancers stop sending meanwhile. Keep
    it well under the orchestrator's grace period (docs/deploy.md)."""

    readiness_requires_store: bool = False
    """Report not-ready while the feature store is down. Default: stay ready and serve with
    default features, since an outage would otherwise take every replica out at once."""

    raise_open_files_limit: bool = True
    """At start-up, raise the soft open-files limit to the hard limit (nginx's
    worker_rlimit_nofile): every connection costs a file descriptor."""

    max_body_bytes: int = Field(default=1_048_576, ge=1024, le=64 * 1_048_576)
    """Largest accepted request body; larger ones get 413 before they are parsed."""

    max_request_target_bytes: int = Field(default=8192, ge=256, le=1_048_576)
    """Longest request target (path + query) accepted; longer ones get 414 and the connection
    closes. 8 KiB, like nginx's large_client_header_buffers."""

    max_header_bytes: int = Field(default=32_768, ge=1024, le=1_048_576)
    """Largest request head (request line + headers) accepted, counted as it arrives; larger
    ones get 431 and the connection closes."""

    header_timeout_s: float = Field(default=10.0, gt=0, le=600)
    """Seconds a connection may take, from its start or a request's first byte, to send a
    whole header block; then it is closed (408 if it had started one). Frees idle and slowloris
    connections; uvicorn's own keep-alive timeout (5 s) covers the idle time between requests."""

    body_timeout_s: float = Field(default=30.0, gt=0, le=600)
    """Seconds a request body may go without a byte arriving (while the app waits for it)
    before the connection is closed with 408."""

    max_requests_per_connection: int = Field(default=0, ge=0, le=10_000_000)
    """Requests served on one keep-alive connection before its response carries
    ``Connection: close`` (Envoy's max_requests_per_connection), so a client's connection pool
    reconnects and may land on another worker; 0 (default): no limit -- 4 pooled connections
    measured 48/52 % over 2 workers without it (loadtest/connection_balance.py)."""

    @model_validator(mode="after")
    def _target_fits_the_head(self) -> ServerSettings:
        if self.max_request_target_bytes >= self.max_header_bytes:
            raise ValueError("max_request_target_bytes must be below max_header_bytes")
        return self


class BatchingSettings(_Group):
    """How requests share model calls (``serving/pipeline/batching.py``)."""

    max_batch_size: int = Field(default=1000, ge=1, le=100_000)
    """Most rows the adaptive batcher merges into one model call; a request with more rows
    is one call of its own (never cut: its parts would only run back to back)."""

    max_latency_ms: int = Field(default=10_000, ge=10, le=600_000)
    """Batcher queue budget: requests whose estimated wait exceeds it are shed with 503."""

    max_batch_wait_ms: float = Field(default=0.0, ge=0, le=1000)
    """Longest a request waits for others to share its model call when the model is idle.
    0: an idle model starts at once; batches form from requests arriving while it is busy."""

    max_batch_rows: int = Field(default=1000, ge=1, le=100_000)
    """Most orders accepted in one /v1/predict/batch request."""


class FeatureStoreSettings(_Group):
    """Where online entity features come from (``DELIVERY_ETA_FEATURE_STORE_*``; its Redis is
    ``ServiceSettings.redis_url``, shared with the prediction log)."""

    model_config = SettingsConfigDict(env_prefix=f"{ENV_PREFIX}FEATURE_STORE_")

    backend: Literal["embedded", "redis"] = "embedded"
    """Where online entity features come from: the model's embedded snapshot, or Redis."""

    timeout_ms: float = Field(default=50.0, gt=0, le=10_000)
    """Budget for one feature-store lookup; past it the request uses default features."""


class ShadowSettings(_Group):
    """Shadow inference (``DELIVERY_ETA_SHADOW_*``; serving/pipeline/shadow.py, docs/shadow.md)."""

    model_config = SettingsConfigDict(env_prefix=f"{ENV_PREFIX}SHADOW_")

    model_tag: str | None = Field(
        default=None, min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:-]+$"
    )
    """A challenger that scores live requests beside the served model, off the response path,
    its answers logged with the served ones (never returned): a model-store tag, or
    ``candidate`` for the newest ``stage=candidate`` model. Loaded and verified at start-up
    like the served model. Unset: no shadow."""

    fraction: float = Field(default=1.0, ge=0, le=1)
    """Share of requests the challenger also scores (chosen by prediction id; a batch request
    whole or not at all). 1 scores every request: docs/performance.md measures its cost."""

    queue_rows: int = Field(default=20_000, ge=1, le=1_000_000)
    """Most rows waiting for the challenger per worker; beyond it requests are logged without
    a challenger answer (counted ``dropped_queue_full``). ~100 B per row of memory."""

    interval_ms: float = Field(default=50.0, ge=1, le=10_000)
    """The challenger scores everything queued every this many ms, in one call: per-call
    overhead is paid once per interval, not per request. A prediction reaches the log (and can
    take feedback on another worker) up to this much later."""

    nice: int = Field(default=10, ge=0, le=19)
    """CPU niceness of each worker's challenger thread (Linux, per thread): under contention
    the kernel runs the served model's threads first. 0: same priority."""


class SecuritySettings(_Group):
    """Untrusted clients: the bearer tokens some routes require (docs/security.md)."""

    feedback_token: SecretStr | None = Field(default=None, min_length=16)
    """Bearer token ``POST /v1/feedback`` requires (``Authorization: Bearer <token>``); unset:
    open. Labels move the online MAE and coverage that alerts and promotions read, so set it
    wherever clients are not all trusted (Kubernetes: from the Secret). Unset by default so
    that a local ``make serve`` and existing clients keep working; a built-in default token
    would be a published secret."""

    metrics_token: SecretStr | None = Field(default=None, min_length=16)
    """Bearer token ``GET /metrics`` requires; unset: open. Unset by default for the same
    reason as ``feedback_token``; Kubernetes and compose set it and scrape with it."""


class TelemetrySettings(_Group):
    """What the service tells about itself: logs, traces, metrics and drift."""

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    """Log level of the service's own loggers."""

    tracing: bool = False
    """OpenTelemetry spans for every request (BentoML's tracing config then applies). Off by
    default: BentoML records a span per request even at sample rate 0, which cost half the CPU
    of a do-nothing request (docs/performance.md)."""

    access_log: bool = False
    """BentoML's per-request access log; off by default because it costs throughput."""

    metrics_cache_s: float = Field(default=1.0, ge=0, le=60)
    """Each worker answers /metrics from its latest rendering while it is younger than this,
    so scrapes cost one render per worker per period however many clients scrape; 0: render
    every scrape. 1 s is far below any scrape interval (15 s here), so Prometheus sees fresh
    values."""

    drift_window_rows: int = Field(default=2000, ge=200, le=1_000_000)
    """Recent rows (per worker) whose feature distribution is compared with training (PSI)."""


class _GroupedEnvironment(EnvSettingsSource):
    """The environment as :class:`ServiceSettings` reads it: each group's fields under the
    group's own prefix, so every variable keeps its flat name (``DELIVERY_ETA_WORKERS``,
    ``DELIVERY_ETA_SHADOW_FRACTION``); a group's own name (``DELIVERY_ETA_SHADOW``) is no
    variable, and is ignored like any unknown one."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        if _group_of(field) is not None:
            return None, field_name, False
        return super().get_field_value(field, field_name)

    def __call__(self) -> dict[str, Any]:
        values = super().__call__()
        for name, field in self.settings_cls.model_fields.items():
            group = _group_of(field)
            if group is not None and (group_values := EnvSettingsSource(group)()):
                values[name] = group_values
        return values


def _group_of(field: FieldInfo) -> type[BaseSettings] | None:
    # Any settings class counts, not only _Group: a package below serving (the prediction log)
    # may bring its own, with its own prefix.
    group = field.annotation
    return group if isinstance(group, type) and issubclass(group, BaseSettings) else None


class ServiceSettings(ModelSettings):
    """Runtime configuration of the prediction service (env prefix ``DELIVERY_ETA_``), in
    groups; the model selection fields come from :class:`models.settings.ModelSettings`.

    Every variable has the name it had before the grouping: a group's fields are read under
    its prefix (:class:`_GroupedEnvironment`); :func:`setting_name` spells a field's error
    location the same way.
    """

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    server: ServerSettings = Field(default_factory=ServerSettings)
    """Workers, accepting, the drain, readiness and the HTTP limits."""

    batching: BatchingSettings = Field(default_factory=BatchingSettings)
    """How requests share model calls."""

    feature_store: FeatureStoreSettings = Field(default_factory=FeatureStoreSettings)
    """The online feature store."""

    shadow: ShadowSettings = Field(default_factory=ShadowSettings)
    """The challenger scoring beside the served model, if any."""

    security: SecuritySettings = Field(default_factory=SecuritySettings)
    """Bearer tokens."""

    telemetry: TelemetrySettings = Field(default_factory=TelemetrySettings)
    """Logs, traces, metrics and drift."""

    treelite_max_rows: int = Field(default=128, ge=1, le=100_000)
    """Batches above this many rows go to sklearn, whose vectorised path wins there."""

    model_threads: int = Field(default=1, ge=1, le=64)
    """Native (OpenMP) threads per model call in each worker; 1 avoids oversubscription."""

    prediction_floor_min: float = Field(default=1.0, ge=0)
    """Predictions below this many minutes are clamped up to it (and counted)."""

    prediction_ceiling_min: float = Field(default=240.0, gt=0)
    """Predictions above this many minutes are clamped down to it (and counted)."""

    redis_url: RedisDsn | None = None
    """Redis URL for the ``redis`` feature store (and the ``redis`` prediction log, unless it has its
    own), e.g. redis://127.0.0.1:6379/0."""

    prediction_log: PredictionLogSettings = Field(default_factory=PredictionLogSettings)
    """The prediction log (``DELIVERY_ETA_PREDICTION_LOG_*``, read by the log's own settings
    class under that prefix: prediction_log/settings.py, docs/prediction-log.md)."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Arguments first, then the environment with each group under its own prefix."""
        return (
            init_settings,
            _GroupedEnvironment(settings_cls),
            dotenv_settings,
            file_secret_settings,
        )

    @model_validator(mode="after")
    def _prediction_log_fits(self) -> ServiceSettings:
        max_batch_rows = self.batching.max_batch_rows
        if self.shadow.model_tag is not None and self.shadow.queue_rows < max_batch_rows:
            raise ValueError(
                "shadow_queue_rows must be at least max_batch_rows, or no full batch is ever "
                "scored by the challenger"
            )
        if self.prediction_log.queue_rows < max_batch_rows:
            raise ValueError(
                "prediction_log_queue_rows must be at least max_batch_rows, or no full batch is "
                "ever logged"
            )
        if self.prediction_log.retention_hours * 60 < self.prediction_ceiling_min:
            raise ValueError(
                "prediction_log_retention_hours must cover prediction_ceiling_min: a label "
                "arrives when the delivery ends"
            )
        return self

    @model_validator(mode="after")
    def _consistent(self) -> ServiceSettings:
        log_redis = self.prediction_log.backend == "redis" and not self.prediction_log.redis_url
        feature_redis = self.feature_store.backend == "redis"
        if (feature_redis or log_redis) and self.redis_url is None:
            raise ValueError(
                "DELIVERY_ETA_REDIS_URL must be set when the feature store or prediction log is redis"
            )
        if self.prediction_floor_min >= self.prediction_ceiling_min:
            raise ValueError("prediction_floor_min must be below prediction_ceiling_min")
        return self


def setting_name(loc: tuple[str | int, ...]) -> str:
    """The flat name (the variable's, without ``DELIVERY_ETA_``, lower case) of the setting at
    error location ``loc`` of :class:`ServiceSettings`: ``("shadow", "fraction")`` is
    ``shadow_fraction``, ``("batching", "max_batch_rows")`` is ``max_batch_rows``."""
    field = ServiceSettings.model_fields.get(str(loc[0])) if loc else None
    group = None if field is None else _group_of(field)
    if group is None:
        return ".".join(map(str, loc))
    if len(loc) == 1:  # the group's own check, across its fields: as the whole settings' were
        return ""
    prefix = str(group.model_config.get("env_prefix", ENV_PREFIX))[len(ENV_PREFIX) :]
    return ".".join([prefix.lower() + str(loc[1]), *map(str, loc[2:])])
