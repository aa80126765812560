"""Which prediction log an instance or tool uses, said in words, and the warning about the old
shared default (``prediction_log.location``)."""

from __future__ import annotations

import logging
import shlex
import sqlite3
from pathlib import Path

import pytest

from prediction_log.location import (
    LogLocation,
    announce,
    legacy_log_warning,
    log_notices,
)
from prediction_log.settings import PredictionLogSettings


@pytest.fixture
def homes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> tuple[Path, Path]:
    """(the user's home, this instance's BENTOML_HOME), both temporary: never the real ~."""
    user, instance = tmp_path / "user with space", tmp_path / "instance"
    monkeypatch.setenv("HOME", str(user))
    monkeypatch.setenv("BENTOML_HOME", str(instance))
    return user, instance


def _old_log(user: Path) -> Path:
    """The old default log, as an older release left it."""
    old = user / ".local" / "state" / "delivery-eta" / "predictions.sqlite3"
    old.parent.mkdir(parents=True)
    sqlite3.connect(old).execute("CREATE TABLE prediction_blocks (id)").connection.close()
    return old


def test_the_old_shared_log_is_named_with_how_to_keep_it_and_never_moved(
    homes: tuple[Path, Path],
) -> None:
    user, instance = homes
    settings = PredictionLogSettings()
    assert legacy_log_warning(settings) is None  # no old file: nothing to say
    old = _old_log(user)
    warning = legacy_log_warning(settings)
    assert warning is not None
    new = instance / "delivery-eta" / "predictions.sqlite3"
    assert f"the old default prediction log {old} still exists" in warning
    assert f"the default is now one log per BENTOML_HOME, {new}" in warning
    use_old = f"DELIVERY_ETA_PREDICTION_LOG_PATH={shlex.quote(str(old))}"  # a shell can paste it
    assert f"To keep using the old one, set {use_old}" in warning
    assert f"`{use_old} make export-labels OUT=old-labels.parquet`, then delete it" in warning
    assert old.is_file() and not new.exists()  # named, not moved (nor the new one created)

    new.parent.mkdir(parents=True)
    new.touch()  # the first start created this instance's log: the old one still holds labels
    assert legacy_log_warning(PredictionLogSettings()) == warning


def test_no_warning_once_a_log_is_chosen(
    homes: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    old = _old_log(homes[0])
    monkeypatch.setenv("DELIVERY_ETA_PREDICTION_LOG_PATH", str(old))  # kept using the old one
    assert legacy_log_warning(PredictionLogSettings()) is None
    assert legacy_log_warning(PredictionLogSettings(path=tmp_path / "x")) is None
    monkeypatch.delenv("DELIVERY_ETA_PREDICTION_LOG_PATH")
    redis = PredictionLogSettings(backend="redis", redis_url="redis://127.0.0.1:1/0")
    assert legacy_log_warning(redis) is None  # a Redis log: the file is not in its way
    assert legacy_log_warning(PredictionLogSettings()) is not None
    old.unlink()  # exported and deleted
    assert legacy_log_warning(PredictionLogSettings()) is None


def test_tools_name_the_log_they_read_on_stderr(
    homes: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    user, instance = homes
    announce(PredictionLogSettings(), "export-labels")
    said = capsys.readouterr()
    new = instance / "delivery-eta" / "predictions.sqlite3"
    assert (said.out, said.err) == ("", f"export-labels: reading the sqlite log {new}\n")

    old = _old_log(user)
    announce(PredictionLogSettings(), "compare")
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == f"compare: reading the sqlite log {new}"
    assert lines[1].startswith(f"compare: warning: the old default prediction log {old} ")
    assert len(lines) == 2

    redis = PredictionLogSettings(
        backend="redis", redis_url="redis://:secret@10.0.0.1:6380/2", redis_prefix="p:"
    )
    announce(redis, "promote")
    assert capsys.readouterr().err == (
        "promote: reading the redis log redis://***@10.0.0.1:6380/2, keys p:*\n"
    )


def test_the_service_logs_the_log_it_writes_then_the_warning(homes: tuple[Path, Path]) -> None:
    user, instance = homes
    _old_log(user)
    notices = log_notices(PredictionLogSettings(), "logging predictions to")
    assert [level for level, _ in notices] == [logging.INFO, logging.WARNING]
    new = instance / "delivery-eta" / "predictions.sqlite3"
    assert notices[0][1] == f"logging predictions to the sqlite log {new}"
    assert LogLocation.of(PredictionLogSettings()) == LogLocation("sqlite", new)
