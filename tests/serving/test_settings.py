"""The settings object reads DELIVERY_ETA_* variables and rejects inconsistent ones."""

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from prediction_log.settings import LEGACY_PREDICTION_LOG_PATH
from serving.settings import ServiceSettings, available_cpus


def test_defaults_serve_the_production_model_from_the_embedded_store() -> None:
    settings = ServiceSettings()
    assert settings.model_tag is None  # resolved to the stage=production model at start-up
    assert settings.feature_store_backend == "embedded"
    assert settings.max_batch_rows == 1000


def test_values_come_from_prefixed_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DELIVERY_ETA_MAX_BATCH_ROWS", "25")
    monkeypatch.setenv("DELIVERY_ETA_FEATURE_STORE_BACKEND", "redis")
    monkeypatch.setenv("DELIVERY_ETA_REDIS_URL", "redis://127.0.0.1:6399/0")
    settings = ServiceSettings()
    assert settings.max_batch_rows == 25
    assert str(settings.redis_url) == "redis://127.0.0.1:6399/0"


def test_redis_backend_without_url_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DELIVERY_ETA_FEATURE_STORE_BACKEND", "redis")
    with pytest.raises(ValidationError, match="DELIVERY_ETA_REDIS_URL"):
        ServiceSettings()


def test_out_of_range_value_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DELIVERY_ETA_MAX_BATCH_ROWS", "0")
    with pytest.raises(ValidationError, match="max_batch_rows"):
        ServiceSettings()


def test_default_workers_follow_the_cpus_the_process_may_use(tmp_path: Path) -> None:
    affinity = len(os.sched_getaffinity(0))
    cpu_max = tmp_path / "cpu.max"
    assert available_cpus(cpu_max) == affinity  # no cgroup file: affinity alone
    cpu_max.write_text("max 100000\n")
    assert available_cpus(cpu_max) == affinity  # no quota
    cpu_max.write_text("150000 100000\n")
    assert available_cpus(cpu_max) == min(affinity, 2)  # 1.5 CPUs round up
    cpu_max.write_text("50000 100000\n")
    assert available_cpus(cpu_max) == 1
    assert ServiceSettings().workers == available_cpus()


def test_tracing_is_off_unless_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    assert ServiceSettings().tracing is False
    monkeypatch.setenv("DELIVERY_ETA_TRACING", "true")
    assert ServiceSettings().tracing is True


def test_prediction_log_defaults_keep_labels_hours_not_a_week() -> None:
    settings = ServiceSettings()
    assert settings.prediction_log.retention_hours == 6
    assert settings.prediction_log.retention_hours * 60 >= settings.prediction_ceiling_min
    assert settings.prediction_log.queue_rows >= settings.max_batch_rows
    assert settings.prediction_log.batch_sample_rate == 1


def test_the_default_prediction_log_is_the_instances_own_under_bentoml_home(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Two instances with their own BENTOML_HOME (model store) get their own log; the default
    follows BentoML's: $BENTOML_HOME, else ~/bentoml -- never a file every instance shares."""
    monkeypatch.setenv("BENTOML_HOME", str(tmp_path / "a"))
    a = ServiceSettings().prediction_log.path
    monkeypatch.setenv("BENTOML_HOME", str(tmp_path / "b"))
    b = ServiceSettings().prediction_log.path
    assert (a, b) == (
        tmp_path / "a" / "delivery-eta" / "predictions.sqlite3",
        tmp_path / "b" / "delivery-eta" / "predictions.sqlite3",
    )
    monkeypatch.delenv("BENTOML_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    home_default = tmp_path / "user" / "bentoml" / "delivery-eta" / "predictions.sqlite3"
    assert ServiceSettings().prediction_log.path == home_default
    monkeypatch.setenv("BENTOML_HOME", "~/elsewhere")  # expanded, as BentoML does
    assert ServiceSettings().prediction_log.path.parent == tmp_path / "user" / "elsewhere" / (
        "delivery-eta"
    )
    assert LEGACY_PREDICTION_LOG_PATH.expanduser() != home_default
    # The setting still wins, and the default is computed when the settings are read.
    monkeypatch.setenv("DELIVERY_ETA_PREDICTION_LOG_PATH", str(tmp_path / "mine.sqlite3"))
    assert ServiceSettings().prediction_log.path == tmp_path / "mine.sqlite3"


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"DELIVERY_ETA_PREDICTION_LOG_RETENTION_HOURS": "2"}, "prediction_ceiling_min"),
        ({"DELIVERY_ETA_PREDICTION_LOG_QUEUE_ROWS": "999"}, "max_batch_rows"),
        ({"DELIVERY_ETA_PREDICTION_LOG_BATCH_SAMPLE_RATE": "1.5"}, "less than or equal to 1"),
        ({"DELIVERY_ETA_PREDICTION_LOG_BACKEND": "redis"}, "DELIVERY_ETA_REDIS_URL"),
    ],
)
def test_inconsistent_prediction_log_settings_are_rejected(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], message: str
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=message):
        ServiceSettings()


def test_the_redis_log_may_have_a_redis_of_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DELIVERY_ETA_PREDICTION_LOG_BACKEND", "redis")
    monkeypatch.setenv("DELIVERY_ETA_PREDICTION_LOG_REDIS_URL", "redis://127.0.0.1:6400/1")
    settings = ServiceSettings()
    assert settings.redis_url is None
    assert str(settings.prediction_log.redis_url) == "redis://127.0.0.1:6400/1"
