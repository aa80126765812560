"""The settings object reads DELIVERY_ETA_* variables and rejects inconsistent ones."""

import os
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, SecretStr, ValidationError
from pydantic_settings import BaseSettings

from models.settings import ENV_PREFIX
from prediction_log.settings import LEGACY_PREDICTION_LOG_PATH
from serving.settings import ServiceSettings, available_cpus
from serving.startup import load_settings


def test_defaults_serve_the_production_model_from_the_embedded_store() -> None:
    settings = ServiceSettings()
    assert settings.model_tag is None  # resolved to the stage=production model at start-up
    assert settings.feature_store.backend == "embedded"
    assert settings.batching.max_batch_rows == 1000


def test_values_come_from_prefixed_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DELIVERY_ETA_MAX_BATCH_ROWS", "25")
    monkeypatch.setenv("DELIVERY_ETA_FEATURE_STORE_BACKEND", "redis")
    monkeypatch.setenv("DELIVERY_ETA_REDIS_URL", "redis://127.0.0.1:6399/0")
    settings = ServiceSettings()
    assert settings.batching.max_batch_rows == 25
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
    assert ServiceSettings().server.workers == available_cpus()


def test_tracing_is_off_unless_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    assert ServiceSettings().telemetry.tracing is False
    monkeypatch.setenv("DELIVERY_ETA_TRACING", "true")
    assert ServiceSettings().telemetry.tracing is True


def test_prediction_log_defaults_keep_labels_hours_not_a_week() -> None:
    settings = ServiceSettings()
    assert settings.prediction_log.retention_hours == 6
    assert settings.prediction_log.retention_hours * 60 >= settings.prediction_ceiling_min
    assert settings.prediction_log.queue_rows >= settings.batching.max_batch_rows
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


REDIS = "redis://127.0.0.1:6399/0"
NEEDS_REDIS = {"DELIVERY_ETA_REDIS_URL": REDIS}

# Every variable of the flat settings before they were grouped (issue 25): its name without
# DELIVERY_ETA_, a valid non-default value, where the grouped settings keep it, the value read,
# and any other variable the value needs.
FLAT_SETTINGS: list[tuple[str, str, str, Any, dict[str, str]]] = [
    ("MODEL_TAG", "delivery_eta:abc", "model_tag", "delivery_eta:abc", {}),
    ("MODEL_RUNTIME", "sklearn", "model_runtime", "sklearn", {}),
    ("WORKERS", "3", "server.workers", 3, {}),
    ("ACCEPT_BATCH", "8", "server.accept_batch", 8, {}),
    ("SHUTDOWN_DRAIN_S", "2.5", "server.shutdown_drain_s", 2.5, {}),
    ("READINESS_REQUIRES_STORE", "true", "server.readiness_requires_store", True, {}),
    ("RAISE_OPEN_FILES_LIMIT", "false", "server.raise_open_files_limit", False, {}),
    ("MAX_BODY_BYTES", "2048", "server.max_body_bytes", 2048, {}),
    ("MAX_REQUEST_TARGET_BYTES", "4096", "server.max_request_target_bytes", 4096, {}),
    ("MAX_HEADER_BYTES", "65536", "server.max_header_bytes", 65536, {}),
    ("HEADER_TIMEOUT_S", "3", "server.header_timeout_s", 3.0, {}),
    ("BODY_TIMEOUT_S", "4", "server.body_timeout_s", 4.0, {}),
    ("MAX_REQUESTS_PER_CONNECTION", "100", "server.max_requests_per_connection", 100, {}),
    ("MAX_BATCH_SIZE", "50", "batching.max_batch_size", 50, {}),
    ("MAX_LATENCY_MS", "500", "batching.max_latency_ms", 500, {}),
    ("MAX_BATCH_WAIT_MS", "2", "batching.max_batch_wait_ms", 2.0, {}),
    ("MAX_BATCH_ROWS", "25", "batching.max_batch_rows", 25, {}),
    ("FEATURE_STORE_BACKEND", "redis", "feature_store.backend", "redis", NEEDS_REDIS),
    ("FEATURE_STORE_TIMEOUT_MS", "75", "feature_store.timeout_ms", 75.0, {}),
    ("REDIS_URL", REDIS, "redis_url", REDIS, {}),
    ("TREELITE_MAX_ROWS", "64", "treelite_max_rows", 64, {}),
    ("MODEL_THREADS", "2", "model_threads", 2, {}),
    ("PREDICTION_FLOOR_MIN", "2", "prediction_floor_min", 2.0, {}),
    ("PREDICTION_CEILING_MIN", "200", "prediction_ceiling_min", 200.0, {}),
    ("SHADOW_MODEL_TAG", "delivery_eta:abc", "shadow.model_tag", "delivery_eta:abc", {}),
    ("SHADOW_FRACTION", "0.25", "shadow.fraction", 0.25, {}),
    ("SHADOW_QUEUE_ROWS", "5000", "shadow.queue_rows", 5000, {}),
    ("SHADOW_INTERVAL_MS", "20", "shadow.interval_ms", 20.0, {}),
    ("SHADOW_NICE", "5", "shadow.nice", 5, {}),
    ("FEEDBACK_TOKEN", "f" * 16, "security.feedback_token", "f" * 16, {}),
    ("METRICS_TOKEN", "m" * 16, "security.metrics_token", "m" * 16, {}),
    ("LOG_LEVEL", "DEBUG", "telemetry.log_level", "DEBUG", {}),
    ("TRACING", "true", "telemetry.tracing", True, {}),
    ("ACCESS_LOG", "true", "telemetry.access_log", True, {}),
    ("METRICS_CACHE_S", "5", "telemetry.metrics_cache_s", 5.0, {}),
    ("DRIFT_WINDOW_ROWS", "500", "telemetry.drift_window_rows", 500, {}),
    ("PREDICTION_LOG_BACKEND", "redis", "prediction_log.backend", "redis", NEEDS_REDIS),
    ("PREDICTION_LOG_PATH", "/tmp/x.sqlite3", "prediction_log.path", Path("/tmp/x.sqlite3"), {}),
    ("PREDICTION_LOG_RETENTION_HOURS", "5", "prediction_log.retention_hours", 5.0, {}),
    ("PREDICTION_LOG_MAX_MIB", "64", "prediction_log.max_mib", 64.0, {}),
    ("PREDICTION_LOG_QUEUE_ROWS", "2000", "prediction_log.queue_rows", 2000, {}),
    ("PREDICTION_LOG_BATCH_SAMPLE_RATE", "0.5", "prediction_log.batch_sample_rate", 0.5, {}),
    ("PREDICTION_LOG_TIMEOUT_MS", "300", "prediction_log.timeout_ms", 300.0, {}),
    ("PREDICTION_LOG_REDIS_URL", REDIS, "prediction_log.redis_url", REDIS, {}),
    ("PREDICTION_LOG_REDIS_PREFIX", "p:", "prediction_log.redis_prefix", "p:", {}),
]


def _read(settings: BaseModel, path: str) -> Any:
    value: Any = settings
    for part in path.split("."):
        value = getattr(value, part)
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    return value if isinstance(value, str | bool | int | float | Path) else str(value)


def _variables(settings: type[BaseSettings], prefix: str = ENV_PREFIX) -> set[str]:
    """The variable names ``settings`` reads, each group under its own prefix."""
    names = set()
    for name, field in settings.model_fields.items():
        group = field.annotation
        if isinstance(group, type) and issubclass(group, BaseSettings):
            names |= _variables(group, str(group.model_config.get("env_prefix")))
        else:
            names.add(f"{prefix}{name}".upper())
    return names


def test_the_grouped_settings_read_exactly_the_flat_variables() -> None:
    assert _variables(ServiceSettings) == {f"{ENV_PREFIX}{row[0]}" for row in FLAT_SETTINGS}


@pytest.mark.parametrize(
    ("name", "value", "path", "expected", "needs"), FLAT_SETTINGS, ids=[r[0] for r in FLAT_SETTINGS]
)
def test_every_flat_variable_still_sets_its_setting(
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    value: str,
    path: str,
    expected: Any,
    needs: dict[str, str],
) -> None:
    assert _read(ServiceSettings(), path) != expected  # the value is not the default
    for variable, other in {f"{ENV_PREFIX}{name}": value, **needs}.items():
        monkeypatch.setenv(variable, other)
    assert _read(ServiceSettings(), path) == expected


@pytest.mark.parametrize(
    "name",
    [
        "DELIVERY_ETA_NO_SUCH_SETTING",
        # A group's name is no variable: it is ignored, as it was before there were groups.
        "DELIVERY_ETA_SERVER",
        "DELIVERY_ETA_SHADOW",
        "DELIVERY_ETA_FEATURE_STORE",
        "DELIVERY_ETA_SHADOW_NO_SUCH_SETTING",
    ],
)
def test_unknown_variables_are_ignored(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    expected = ServiceSettings().model_dump()
    for value in ("junk", '{"workers": 9, "model_tag": "x:y", "backend": "redis"}'):
        monkeypatch.setenv(name, value)
        assert ServiceSettings().model_dump() == expected


def test_a_refusal_names_every_invalid_setting_by_its_flat_name(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in [("WORKERS", "0"), ("SHADOW_NICE", "99"), ("PREDICTION_FLOOR_MIN", "-1")]:
        monkeypatch.setenv(f"{ENV_PREFIX}{name}", value)
    with pytest.raises(SystemExit):
        load_settings()
    assert capsys.readouterr().err.splitlines() == [
        "delivery-eta: refusing to start: invalid settings: "
        "workers: Input should be greater than or equal to 1; "
        "shadow_nice: Input should be less than or equal to 19; "
        "prediction_floor_min: Input should be greater than or equal to 0"
    ]


def test_arguments_override_the_environment_group_by_group(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DELIVERY_ETA_SHADOW_FRACTION", "0.25")
    settings = ServiceSettings(shadow={"model_tag": "delivery_eta:abc"})
    assert (settings.shadow.model_tag, settings.shadow.fraction) == ("delivery_eta:abc", 0.25)
