"""The local stack's generated configuration files pass their own tools' checks (no process of
the stack is started: the stack itself runs under ``make cluster-test``)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from loadtest.cluster.configs import REDIS_CONF, haproxy_config, prometheus_config


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
