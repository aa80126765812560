"""A local multi-replica stack, as production runs the service but on one machine's loopback:
N replicas of ``bentoml serve service:DeliveryETA`` (one worker each, as ``make serve`` starts
it), one real redis-server for the entity features and the prediction log with the persistence
of deploy/redis/redis.conf, HAProxy in front health-checking /readyz, and Prometheus scraping
every replica with deploy/monitoring/rules loaded.

Every process gets a free port on 127.0.0.1 and its own process group; :func:`cluster_stack`
stops them all when its block ends, whatever happened inside. Each replica has a BENTOML_HOME
of its own (seeing the model store of ``$BENTOML_HOME``): two servers never share one, since
``bentoml serve`` wipes its home's metrics directory as it starts.

The fault tests (tests/cluster) drive it: kill or SIGTERM a replica and start it again on the
same port (Prometheus keeps one ``instance`` per replica), stop, restart, freeze and thaw Redis.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis

from loadtest.cluster import container
from loadtest.cluster.configs import haproxy_config, prometheus_config, redis_command
from loadtest.servers import (
    ROOT,
    free_port,
    private_bentoml_home,
    serve_command,
    stop_process_group,
    wait_ready,
)

DRAIN_S = 2.0
"""Each replica's DELIVERY_ETA_SHUTDOWN_DRAIN_S: /readyz answers 503 this long after SIGTERM
while requests are still served; HAProxy needs ~0.5 s to notice (configs.py), so 2 s leaves
margin on a loaded machine while keeping a rolling restart short (production: 5 s)."""

STOP_GRACE_S = 30.0
"""Seconds a replica may take to exit after SIGTERM (terminationGracePeriodSeconds)."""


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"{name} is not installed: run `make system-deps`")
    return path


def _popen(command: list[str], log_path: Path, env: Mapping[str, str] | None = None) -> Any:
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            command,
            cwd=ROOT,
            env=None if env is None else dict(env),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


@dataclass
class Replica:
    """One replica on a fixed loopback port: ``bentoml serve`` as a process (``image`` None),
    or the container image run by the engine (loadtest/cluster/container.py)."""

    name: str
    port: int
    env: dict[str, str]
    log_path: Path
    image: str | None = None
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def container(self) -> str:
        return f"delivery-eta-cluster-{os.getpid()}-{self.name}"

    def start(self) -> None:
        """Start it (again) on its port; :meth:`wait_ready` for it."""
        if self.image is None:
            self.proc = _popen(serve_command(self.port), self.log_path, self.env)
            return
        container.remove_container(self.container)
        command = container.run_command(self.container, self.image, self.port, self.env)
        self.proc = _popen(command, self.log_path)

    def wait_ready(self, timeout_s: float = 120) -> None:
        wait_ready(self.url, timeout_s, self.proc)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """``kill -9`` of the whole replica (server and worker), like a node losing the pod."""
        assert self.proc is not None
        if self.image is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        else:
            # PID 1 of the container dies, and the kernel kills the rest of its namespace.
            container.signal_container(self.container, "KILL")
        self.proc.wait()

    def terminate(self) -> float:
        """SIGTERM to the server process only (what Kubernetes sends a pod's PID 1); waits for
        the exit and returns the seconds it took (the drain, then the in-flight requests)."""
        assert self.proc is not None
        started = time.monotonic()
        if self.image is None:
            os.kill(self.proc.pid, signal.SIGTERM)
        else:
            container.signal_container(self.container, "TERM")
        try:
            self.proc.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            self.kill()
            raise
        return time.monotonic() - started

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.image is not None and self.alive():
            with contextlib.suppress(subprocess.SubprocessError):
                container.signal_container(self.container, "TERM")
            try:
                self.proc.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                self.kill()
        stop_process_group(self.proc, grace_s=STOP_GRACE_S)


@dataclass
class RedisProcess:
    """The stack's one redis-server, loaded with deploy/redis/redis.conf."""

    port: int
    workdir: Path
    proc: subprocess.Popen[bytes] | None = None
    frozen: bool = False

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=5)

    def start(self, timeout_s: float = 30) -> None:
        """Start it and wait until it answers PING (it has loaded its AOF by then)."""
        command = redis_command(_binary("redis-server"), self.port, self.workdir)
        self.proc = _popen(command, self.workdir / "redis.log")
        deadline = time.monotonic() + timeout_s
        client = self.client()
        try:
            while True:
                try:
                    client.ping()
                    return
                except (redis.ConnectionError, redis.BusyLoadingError):
                    if self.proc.poll() is not None or time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
        finally:
            client.close()

    def stop(self) -> None:
        """A clean stop (SIGTERM: Redis fsyncs its AOF and exits), as a rollout does."""
        if self.proc is None:
            return
        self.thaw()
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.proc = None

    def freeze(self) -> None:
        """SIGSTOP: Redis holds its connections open and answers nothing (a stalled node)."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)
        self.frozen = True

    def thaw(self) -> None:
        if self.proc is not None and self.frozen:
            os.kill(self.proc.pid, signal.SIGCONT)
        self.frozen = False


@dataclass
class Stack:
    """The running stack: its replicas, Redis, HAProxy (``url``) and Prometheus (``prometheus_url``)."""

    workdir: Path
    redis: RedisProcess
    replicas: list[Replica]
    url: str
    stats_url: str
    prometheus_url: str
    feedback_token: str
    metrics_token: str
    runtime: str
    """``process`` (``bentoml serve``, as ``make serve`` runs it) or ``image`` (containers)."""
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def feedback_headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.feedback_token}"}

    def backend_status(self) -> dict[str, str]:
        """HAProxy's view of each replica: ``UP``, ``DOWN``, ``UP 1/2`` (going down), ..."""
        text = httpx.get(f"{self.stats_url}/stats;csv", timeout=5).text
        rows = csv.DictReader(io.StringIO(text.lstrip("# ")))
        return {
            row["svname"]: row["status"]
            for row in rows
            if row["pxname"] == "replicas" and row["svname"] not in ("FRONTEND", "BACKEND")
        }

    def wait_status(self, name: str, wanted: str, timeout_s: float = 120) -> float:
        """Seconds until HAProxy reports replica ``name`` exactly ``wanted`` (UP / DOWN)."""
        started = time.monotonic()
        while self.backend_status().get(name) != wanted:
            if time.monotonic() - started > timeout_s:
                raise TimeoutError(f"{name} not {wanted} after {timeout_s:.0f} s")
            time.sleep(0.05)
        return time.monotonic() - started

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The instant vector ``expr`` evaluates to now on the stack's Prometheus."""
        response = httpx.get(
            f"{self.prometheus_url}/api/v1/query", params={"query": expr}, timeout=10
        )
        body = response.json()
        if body.get("status") != "success":
            raise RuntimeError(f"Prometheus refused {expr!r}: {body}")
        return list(body["data"]["result"])

    def scalar(self, expr: str) -> float | None:
        """The one value ``expr`` evaluates to, or None if it is empty."""
        result = self.query(expr)
        if not result:
            return None
        if len(result) > 1:
            raise ValueError(f"{expr!r} has {len(result)} series, not one")
        return float(result[0]["value"][1])

    def wait_scraped(self, settle_s: float = 3.0) -> None:
        """Wait until Prometheus has scraped every replica since now, and evaluated the rules."""
        time.sleep(settle_s)


def _replica_env(
    home: Path,
    redis_url: str,
    model_tag: str,
    shadow_model_tag: str | None,
    tokens: tuple[str, str],
) -> dict[str, str]:
    feedback_token, metrics_token = tokens
    env = {
        **os.environ,
        "BENTOML_HOME": str(home),
        "DELIVERY_ETA_MODEL_TAG": model_tag,
        "DELIVERY_ETA_WORKERS": "1",
        "DELIVERY_ETA_SHUTDOWN_DRAIN_S": str(DRAIN_S),
        "DELIVERY_ETA_FEATURE_STORE_BACKEND": "redis",
        "DELIVERY_ETA_REDIS_URL": redis_url,
        "DELIVERY_ETA_PREDICTION_LOG_BACKEND": "redis",
        "DELIVERY_ETA_FEEDBACK_TOKEN": feedback_token,
        "DELIVERY_ETA_METRICS_TOKEN": metrics_token,
    }
    if shadow_model_tag is not None:
        env["DELIVERY_ETA_SHADOW_MODEL_TAG"] = shadow_model_tag
    return env


def _materialize(model_tag: str, redis_url: str) -> None:
    # What `make materialize` does before a replica can use the Redis feature store.
    from models.store.artifact import load_artifact
    from serving.pipeline.feature_store import materialize

    artifact = load_artifact(model_tag)
    materialize(artifact.entities, artifact.contract, redis_url)


@contextlib.contextmanager
def cluster_stack(
    workdir: Path,
    model_tag: str,
    *,
    replicas: int = 3,
    shadow_model_tag: str | None = None,
    scrape_interval_s: float = 1.0,
    image: str | None = None,
) -> Iterator[Stack]:
    """Start the stack in ``workdir`` (its configs, logs, Redis files, Prometheus data) and
    stop every process of it when the block ends. With ``image`` (which must pack ``model_tag``
    and ``shadow_model_tag``: :func:`container.build_image`) the replicas are containers of it."""
    workdir.mkdir(parents=True, exist_ok=True)
    started: list[subprocess.Popen[bytes]] = []
    redis_server = RedisProcess(port=free_port(), workdir=workdir / "redis")
    redis_server.workdir.mkdir(exist_ok=True)
    members: list[Replica] = []
    try:
        redis_server.start()
        _materialize(model_tag, redis_server.url)
        tokens = (secrets.token_hex(16), secrets.token_hex(16))
        for index in range(replicas):
            name = f"r{index}"
            home = private_bentoml_home(workdir / f"home-{name}")
            env = _replica_env(home, redis_server.url, model_tag, shadow_model_tag, tokens)
            member = Replica(name, free_port(), env, workdir / f"server-{name}.log", image)
            member.start()
            members.append(member)
        for member in members:
            member.wait_ready()

        port, stats_port, prometheus_port = free_port(), free_port(), free_port()
        haproxy_cfg = workdir / "haproxy.cfg"
        haproxy_cfg.write_text(
            haproxy_config(port, stats_port, [(m.name, m.port) for m in members], workdir)
        )
        haproxy = _popen(
            [_binary("haproxy"), "-db", "-f", str(haproxy_cfg)], workdir / "haproxy.log"
        )
        started.append(haproxy)

        token_file = workdir / "metrics-token"
        token_file.write_text(tokens[1])
        prometheus_yml = workdir / "prometheus.yml"
        prometheus_yml.write_text(
            prometheus_config(
                [f"127.0.0.1:{m.port}" for m in members], token_file, scrape_interval_s
            )
        )
        prometheus = _popen(
            [
                _binary("prometheus"),
                f"--config.file={prometheus_yml}",
                f"--storage.tsdb.path={workdir / 'prometheus-data'}",
                f"--web.listen-address=127.0.0.1:{prometheus_port}",
            ],
            workdir / "prometheus.log",
        )
        started.append(prometheus)

        stack = Stack(
            workdir=workdir,
            redis=redis_server,
            replicas=members,
            url=f"http://127.0.0.1:{port}",
            stats_url=f"http://127.0.0.1:{stats_port}",
            prometheus_url=f"http://127.0.0.1:{prometheus_port}",
            feedback_token=tokens[0],
            metrics_token=tokens[1],
            runtime="process" if image is None else "image",
            processes=started,
        )
        _wait_serving(stack)
        yield stack
    finally:
        for member in members:
            with contextlib.suppress(Exception):
                member.stop()
        for proc in started:
            with contextlib.suppress(Exception):
                stop_process_group(proc, grace_s=10)
        with contextlib.suppress(Exception):
            redis_server.stop()


def _wait_serving(stack: Stack, timeout_s: float = 60) -> None:
    """Until HAProxy has every replica UP and Prometheus scrapes every one of them."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for proc in stack.processes:
            if proc.poll() is not None:
                raise RuntimeError(f"{proc.args[0]} exited (logs in {stack.workdir})")
        with contextlib.suppress(httpx.HTTPError, RuntimeError, ValueError):
            statuses = stack.backend_status()
            up = stack.scalar('sum(up{job="delivery-eta"})')
            if all(s == "UP" for s in statuses.values()) and up == len(stack.replicas):
                return
        time.sleep(0.2)
    raise TimeoutError(f"stack not serving after {timeout_s:.0f} s (logs in {stack.workdir})")
