"""The offline commands' one settings object: the log the service writes, read from the same
variables (``DELIVERY_ETA_PREDICTION_LOG_*``, and ``DELIVERY_ETA_REDIS_URL`` as the Redis log's
default Redis), so that a command reads the log the service with the same environment writes.
The model selection (``DELIVERY_ETA_MODEL_*``) comes from :class:`models.settings.ModelSettings`.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pydantic import Field, RedisDsn, ValidationError, model_validator
from pydantic_settings import SettingsConfigDict

from models.settings import ENV_PREFIX, ModelSettings
from prediction_log.location import LogLocation
from prediction_log.settings import PredictionLogSettings


class InvalidSettings(Exception):
    """The settings (variables or options) are invalid: one line naming each problem."""


class OperationsSettings(ModelSettings):
    """What an offline command reads: the model selection and the prediction log (env prefix
    ``DELIVERY_ETA_``)."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    redis_url: RedisDsn | None = None
    """The feature store's Redis (``DELIVERY_ETA_REDIS_URL``, as the service reads it): the
    Redis log's Redis when the log has none of its own."""

    prediction_log: PredictionLogSettings = Field(default_factory=PredictionLogSettings)
    """The prediction log (``DELIVERY_ETA_PREDICTION_LOG_*``)."""

    @model_validator(mode="after")
    def _log_has_a_redis(self) -> OperationsSettings:
        log = self.prediction_log
        if log.backend == "redis" and not log.redis_url and self.redis_url is None:
            raise ValueError(
                "DELIVERY_ETA_REDIS_URL must be set when the feature store or prediction log is redis"
            )
        return self

    def log_location(self) -> LogLocation:
        """The log these settings name."""
        return LogLocation.of(self.prediction_log, self.redis_url)


def operations_settings(
    *,
    backend: str | None = None,
    path: Path | None = None,
    redis_url: str | None = None,
    redis_prefix: str | None = None,
) -> OperationsSettings:
    """The settings from the environment with the given log options, where not None, in place
    of the variables: which log a command reads. :class:`InvalidSettings` (one line naming each
    problem) if they are invalid."""
    overrides: dict[str, Any] = {
        "backend": backend,
        "path": path,
        "redis_url": redis_url,
        "redis_prefix": redis_prefix,
    }
    try:
        log = PredictionLogSettings(**{k: v for k, v in overrides.items() if v is not None})
        return OperationsSettings(prediction_log=log)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in exc.errors()
        )
        raise InvalidSettings(f"invalid settings: {problems}") from exc


def add_log_options(parser: argparse.ArgumentParser) -> None:
    """The options naming which log a command reads (each defaults to the service's setting);
    :func:`settings_from_options` reads them back."""
    parser.add_argument(
        "--backend", choices=["sqlite", "redis"], help="default: the service's setting"
    )
    parser.add_argument("--path", type=Path, help="SQLite log file; default: the service's")
    parser.add_argument("--redis-url", help="Redis of the log; default: the service's")
    parser.add_argument("--redis-prefix", help="key prefix of the Redis log's blocks")


def settings_from_options(args: argparse.Namespace) -> OperationsSettings:
    """:func:`operations_settings` with the options :func:`add_log_options` added."""
    return operations_settings(
        backend=args.backend,
        path=args.path,
        redis_url=args.redis_url,
        redis_prefix=args.redis_prefix,
    )
