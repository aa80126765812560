"""The prediction log's settings (``DELIVERY_ETA_PREDICTION_LOG_*``): which backend, where, how
long and how much it keeps, and how its writes queue.

``serving.settings.ServiceSettings`` composes them as its field ``prediction_log``; the offline
tools (``operations``) compose them the same way, so a tool reads the log the service writes.
The Redis backend falls back to the feature store's Redis (``DELIVERY_ETA_REDIS_URL``), which
is not the log's setting: whoever composes these settings passes it on
(:meth:`prediction_log.location.LogLocation.of`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, RedisDsn
from pydantic_settings import BaseSettings, SettingsConfigDict

from models.settings import ENV_PREFIX

ENV_PREFIX_LOG = f"{ENV_PREFIX}PREDICTION_LOG_"
"""The prefix of every variable below (``DELIVERY_ETA_PREDICTION_LOG_``)."""

DEFAULT_REDIS_KEY_PREFIX = "delivery_eta:block:"
"""Key prefix of the Redis log's blocks unless ``DELIVERY_ETA_PREDICTION_LOG_REDIS_PREFIX``
says otherwise (the one place it is written)."""

LEGACY_PREDICTION_LOG_PATH = Path("~/.local/state/delivery-eta/predictions.sqlite3")
"""The default prediction log before it moved under ``BENTOML_HOME`` (``~``: the user's home,
expanded when used): one file shared by every instance of the user, whatever its model store.
Nothing reads it unless told to (``prediction_log.location`` names it)."""


def bentoml_home() -> Path:
    """BentoML's home, as BentoML computes it: ``$BENTOML_HOME``, else ``~/bentoml``."""
    home = os.environ.get("BENTOML_HOME", os.path.join("~", "bentoml"))
    # Absolute: the path is printed, and a relative home means the directory it was read in.
    return Path(os.path.expanduser(os.path.expandvars(home))).absolute()


def redacted_url(url: str) -> str:
    """``url`` without its password (for messages): how the log's Redis URL is printed, by
    the log's location and by the Redis reader's errors alike."""
    scheme, sep, rest = url.partition("://")
    if "@" not in rest:
        return url
    return f"{scheme}{sep}***@{rest.rpartition('@')[2]}"


def default_prediction_log_path() -> Path:
    """The SQLite prediction log of the instance whose model store is :func:`bentoml_home`."""
    return bentoml_home() / "delivery-eta" / "predictions.sqlite3"


class PredictionLogSettings(BaseSettings):
    """Where predictions wait for their labels, and the bounds of that wait (env prefix
    ``DELIVERY_ETA_PREDICTION_LOG_``; docs/prediction-log.md)."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX_LOG, extra="ignore", frozen=True)

    backend: Literal["sqlite", "redis"] = "sqlite"
    """Where predictions wait for feedback: a local SQLite file, or Redis shared by replicas."""

    path: Path = Field(default_factory=default_prediction_log_path)
    """SQLite file of the ``sqlite`` prediction log (shared by the workers of one replica).
    Default: ``$BENTOML_HOME/delivery-eta/predictions.sqlite3`` (``BENTOML_HOME`` defaults to
    ``~/bentoml``, as in BentoML), so each instance -- each model store -- has its own log:
    the feedback for a prediction reaches the instance that made it, and ``make export-labels``
    reads the labels of the models in the same store. It used to be
    :data:`LEGACY_PREDICTION_LOG_PATH`, one file for every instance of the user."""

    retention_hours: float = Field(default=6.0, gt=0)
    """How long a prediction can still receive feedback. 6 h: a delivery ends within the
    prediction ceiling (4 h by default), and the label gets 2 h more to arrive; a week (the
    old default) cost ~28x the storage for labels that never come (docs/prediction-log.md)."""

    max_mib: float = Field(default=512.0, ge=1, le=1_048_576)
    """Size cap of the SQLite prediction log (pages in use): above it the oldest predictions are
    deleted, whatever their age. 512 MiB fits the k8s ``state`` emptyDir (1 Gi) with the WAL."""

    queue_rows: int = Field(default=100_000, ge=1, le=10_000_000)
    """Most predictions one worker keeps queued for the log (waiting for a write, or for the
    store to come back); beyond it new ones are dropped and counted. ~100 B per batch row,
    ~600 B per single prediction of memory."""

    batch_sample_rate: float = Field(default=1.0, ge=0, le=1)
    """Share of multi-row requests whose predictions are logged (whole requests are kept or
    not); 1 logs everything. Feedback for an unlogged prediction is 404, like an expired one."""

    timeout_ms: float = Field(default=1000.0, gt=0, le=60_000)
    """Longest one prediction-log write or feedback lookup waits for its store (a SQLite lock,
    Redis); past it the write is retried later and the feedback answers 503."""

    redis_url: RedisDsn | None = None
    """Redis of the ``redis`` prediction log; default: ``DELIVERY_ETA_REDIS_URL`` (the feature
    store's). A separate instance or logical DB keeps the log's memory apart from the features."""

    redis_prefix: str = Field(
        default=DEFAULT_REDIS_KEY_PREFIX, min_length=1, max_length=200, pattern=r"^[!-~]+$"
    )
    """Key prefix of the Redis prediction log's blocks (the feature snapshot uses
    ``delivery_eta:<snapshot>:``)."""
