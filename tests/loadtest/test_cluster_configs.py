"""The local stack's generated configuration files pass their own tools' checks (no process of
the stack is started: the stack itself runs under ``make cluster-test``)."""

from __future__ import annotations

import itertools
import shutil
import subprocess
from pathlib import Path

import pytest

from loadtest.cluster.configs import REDIS_CONF, haproxy_config, prometheus_config
from loadtest.cluster.container import run_command


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy not installed")
def test_haproxy_config_is_valid_and_checks_readiness(tmp_path: Path) -> None:
    config = haproxy_config(8080, 8081, [("r0", 9000), ("r1", 9001)], tmp_path)
    path = tmp_path / "haproxy.cfg"
    path.write_text(config)
    checked = subprocess.run(
        ["haproxy", "-c", "-f", str(path)], capture_output=True, text=True, timeout=30
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "option httpchk GET /readyz" in config
    assert "option redispatch" in config
    assert "bind 127.0.0.1:8080" in config


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
def test_prometheus_config_is_valid_and_loads_the_rules(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("x" * 32)
    path = tmp_path / "prometheus.yml"
    path.write_text(prometheus_config(["127.0.0.1:9000", "127.0.0.1:9001"], token, 0.5))
    checked = subprocess.run(
        ["promtool", "check", "config", str(path)], capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 2 rules found" in checked.stdout or "rules found" in checked.stdout


def test_redis_persistence_is_the_append_only_file() -> None:
    settings = dict(
        line.split(None, 1)
        for line in REDIS_CONF.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    )
    assert settings["appendonly"] == "yes"
    assert settings["appendfsync"] == "everysec"


def test_a_container_replica_runs_on_loopback_hardened_with_only_the_service_settings() -> None:
    env = {
        "PATH": "/usr/bin",
        "HOME": "/root",
        "BENTOML_HOME": "/tmp/host-home",
        "DELIVERY_ETA_WORKERS": "1",
        "DELIVERY_ETA_REDIS_URL": "redis://127.0.0.1:6390/0",
    }
    command = run_command("replica-r0", "delivery-eta-cluster:abc", 41234, env)
    flags = list(itertools.pairwise(command))
    assert ("--network", "host") in flags
    assert "--read-only" in command and ("--cap-drop", "ALL") in flags
    assert ("-e", "PORT=41234") in flags and ("-e", "BENTOML_HOST=127.0.0.1") in flags
    assert ("-e", "DELIVERY_ETA_REDIS_URL=redis://127.0.0.1:6390/0") in flags
    # The host's own environment (its PATH, its model store) never reaches the container.
    passed = {value.split("=", 1)[0] for flag, value in flags if flag == "-e"}
    assert passed == {
        "BENTOML_HOME",
        "BENTOML_HOST",
        "PORT",
        "DELIVERY_ETA_WORKERS",
        "DELIVERY_ETA_REDIS_URL",
        "DELIVERY_ETA_PREDICTION_LOG_PATH",
    }
    assert ("-e", "BENTOML_HOME=/var/lib/bentoml") in flags
    assert command[-1] == "delivery-eta-cluster:abc"
