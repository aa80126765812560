"""Which prediction log an instance uses, said in words: the service's start-up line and the
tools that read the log (``make export-labels``, ``make compare``, ``make promote`` with live
evidence) print it, so two instances or a tool and a server never share or miss a log unseen.

Also names the old default, :data:`prediction_log.settings.LEGACY_PREDICTION_LOG_PATH`, when it
still exists beside an instance that now uses the default under its ``BENTOML_HOME``. It is never
moved automatically: every instance of the user shared it, so it belongs to none of them in
particular, one of them (of an older release) may still be writing to it, and moving a SQLite
file under a writer loses its WAL. The warning says how to keep using it or export its labels.
Light: the serving process imports it (the readers only when a tool asks:
:meth:`LogLocation.reader`).
"""

from __future__ import annotations

import logging
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from prediction_log.buffered import LOGGER_NAME
from prediction_log.settings import (
    DEFAULT_REDIS_KEY_PREFIX,
    ENV_PREFIX_LOG,
    LEGACY_PREDICTION_LOG_PATH,
    PredictionLogSettings,
    redacted_url,
)

if TYPE_CHECKING:
    from prediction_log.reading import PredictionLogReader

PATH_VARIABLE = f"{ENV_PREFIX_LOG}PATH"

logger = logging.getLogger(LOGGER_NAME)


@dataclass(frozen=True)
class LogLocation:
    """Which prediction log to read."""

    backend: Literal["sqlite", "redis"]
    path: Path | None = None
    """The SQLite file (backend ``sqlite``)."""
    redis_url: str | None = None
    """The Redis holding the log (backend ``redis``)."""
    redis_prefix: str = DEFAULT_REDIS_KEY_PREFIX

    @classmethod
    def of(cls, settings: PredictionLogSettings, shared_redis_url: object = None) -> LogLocation:
        """The log written with ``settings``; ``shared_redis_url`` (the feature store's Redis,
        ``DELIVERY_ETA_REDIS_URL``) is the Redis log's Redis when the log has none of its own."""
        url = settings.redis_url or shared_redis_url
        return cls(
            backend=settings.backend,
            path=settings.path,
            redis_url=None if url is None else str(url),
            redis_prefix=settings.redis_prefix,
        )

    def reader(self) -> PredictionLogReader:
        """A reader of this log (:class:`prediction_log.reading.LogReadError` if it cannot be
        opened): use it as a context manager. Imported here, when a tool reads, so that the
        service, which only writes, never imports the readers."""
        from prediction_log.reading import LogReadError

        if self.backend == "sqlite":
            from prediction_log.sqlite_reader import SQLiteLogReader

            if self.path is None:
                raise LogReadError("no SQLite log path given")
            return SQLiteLogReader(self.path)
        from prediction_log.redis_reader import RedisLogReader

        if not self.redis_url:
            raise LogReadError("no Redis URL given for the Redis log")
        return RedisLogReader(self.redis_url, self.redis_prefix)

    def describe(self) -> str:
        """The log in words, without a password."""
        if self.backend == "sqlite":
            return f"sqlite log {self.path}"
        return f"redis log {redacted_url(self.redis_url or '')}, keys {self.redis_prefix}*"


def legacy_log_warning(
    settings: PredictionLogSettings, legacy: Path = LEGACY_PREDICTION_LOG_PATH
) -> str | None:
    """A warning naming the old shared default log ``legacy`` when it exists and ``settings``
    use the new default instead (the SQLite path not set); None otherwise.

    Said as long as the old file exists, not only until the new one is created (the first
    start creates it): the labels still waiting in the old file would otherwise go unmentioned
    by the very tools that export them. It names the two safe ways out -- keep using the old
    file, or export its labels and delete it -- and not a move, which would overwrite this
    instance's log and lose the WAL of a server still writing to the old one.
    """
    legacy = legacy.expanduser()
    if (
        settings.backend != "sqlite"
        or "path" in settings.model_fields_set
        or not legacy.is_file()
        or legacy.absolute() == settings.path.absolute()
    ):
        return None
    use_old = f"{PATH_VARIABLE}={shlex.quote(str(legacy))}"
    return (
        f"the old default prediction log {legacy} still exists, shared by every instance of "
        f"this user, and is no longer used: the default is now one log per BENTOML_HOME, "
        f"{settings.path}. To keep using the old one, set {use_old}; to keep "
        f"its labels, `{use_old} make export-labels OUT=old-labels.parquet`, then delete it"
    )


def log_notices(
    settings: PredictionLogSettings, doing: str, shared_redis_url: object = None
) -> list[tuple[int, str]]:
    """What an instance or tool using ``settings`` says about its prediction log, as (level,
    line): what it is ``doing`` with which log (INFO), then the :func:`legacy_log_warning`, if
    any (WARNING). ``shared_redis_url`` as for :meth:`LogLocation.of`."""
    location = LogLocation.of(settings, shared_redis_url)
    notices = [(logging.INFO, f"{doing} the {location.describe()}")]
    warning = legacy_log_warning(settings)
    if warning is not None:
        notices.append((logging.WARNING, warning))
    return notices


def log_at_startup(settings: PredictionLogSettings, shared_redis_url: object = None) -> None:
    """The service's start-up lines (JSON, like its other logs): the log it writes to."""
    for level, line in log_notices(settings, "logging predictions to", shared_redis_url):
        logger.log(level, line)


def announce(settings: PredictionLogSettings, prog: str, shared_redis_url: object = None) -> None:
    """A tool's first lines on stderr (its stdout is its result): the log it reads."""
    for level, line in log_notices(settings, "reading", shared_redis_url):
        warning = "warning: " if level >= logging.WARNING else ""
        print(f"{prog}: {warning}{line}", file=sys.stderr, flush=True)
