"""Local servers on free loopback ports, for the measurement scripts and the tests: the service
(``bentoml serve``, each with its own BENTOML_HOME and prediction log) and a real redis-server.

The tests reach them through ``tests/harness/local_server.py`` and ``tests/harness/redis_server.py``,
which re-export this module: loadtest/ never imports tests/."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parents[1]
"""The repository root (the working directory of every server started here)."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, timeout_s: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Poll ``url``/readyz until 200; fail early if ``proc`` exits."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before it was ready")
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(f"{url}/readyz", timeout=1) as response,
        ):
            if response.status == 200:
                return
        time.sleep(0.2)
    raise TimeoutError(f"{url} not ready after {timeout_s:.0f} s")


@dataclass
class LocalServer:
    """A running server: its URL, process and log file."""

    url: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    prediction_log_path: Path
    """The SQLite prediction log it was started with (``DELIVERY_ETA_PREDICTION_LOG_PATH``)."""

    def log(self) -> str:
        """Everything the server has logged so far."""
        return self.log_path.read_text(errors="replace")


def stop_process_group(proc: subprocess.Popen[bytes], grace_s: float = 30) -> None:
    """SIGTERM the process group started with ``start_new_session``; SIGKILL after ``grace_s``."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def serve_command(port: int) -> list[str]:
    """The command line that serves the service on 127.0.0.1:``port``."""
    return [
        sys.executable,
        "-m",
        "bentoml",
        "serve",
        "service:DeliveryETA",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]


def private_bentoml_home(home: Path) -> Path:
    """A BENTOML_HOME of one server's own that sees the model store of ``$BENTOML_HOME``
    (``~/bentoml`` by default, as BentoML's own).

    ``bentoml serve`` wipes ``$BENTOML_HOME/prometheus_multiproc_dir`` as it starts: two
    servers sharing a home would reset (and mix) each other's metrics.
    """
    store = Path(os.environ.get("BENTOML_HOME", Path.home() / "bentoml")).expanduser()
    home.mkdir(parents=True, exist_ok=True)
    models = home / "models"
    if not models.exists():
        models.symlink_to((store / "models").resolve(), target_is_directory=True)
    return home


def start_service(
    out: Path,
    name: str,
    *,
    model_tag: str,
    workers: int,
    cwd: Path = ROOT,
    base_env: Mapping[str, str] | None = None,
    settings: Mapping[str, str] | None = None,
) -> tuple[str, subprocess.Popen[bytes]]:
    """Start ``bentoml serve`` of the checkout ``cwd`` in the background, on a free loopback port,
    as the A/B measurements run it: ``model_tag`` at ``workers`` workers, no shutdown drain, a
    fresh BENTOML_HOME of its own (``out/home-<name>``, seeing ``$BENTOML_HOME``'s models) and
    prediction log (``out/log-<name>.sqlite3``), its output in ``out/server-<name>.log``.

    The environment is ``base_env`` (default: this process's), then those, then ``settings``.
    Returns the URL and the process: :func:`wait_ready` it, :func:`stop_process_group` it.
    """
    home, log_path = out / f"home-{name}", out / f"log-{name}.sqlite3"
    shutil.rmtree(home, ignore_errors=True)  # a stale link to another store, old metrics
    for stale in out.glob(f"{log_path.name}*"):
        stale.unlink()
    port = free_port()
    env = {
        **(os.environ if base_env is None else base_env),
        "BENTOML_HOME": str(private_bentoml_home(home)),
        "DELIVERY_ETA_MODEL_TAG": model_tag,
        "DELIVERY_ETA_WORKERS": str(workers),
        "DELIVERY_ETA_SHUTDOWN_DRAIN_S": "0",
        "DELIVERY_ETA_PREDICTION_LOG_PATH": str(log_path),
        **(settings or {}),
    }
    with open(out / f"server-{name}.log", "wb") as log:
        proc = subprocess.Popen(
            serve_command(port),
            cwd=cwd,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return f"http://127.0.0.1:{port}", proc


@contextlib.contextmanager
def local_server(
    log_path: Path, env: Mapping[str, str] | None = None, ready_timeout_s: float = 90
) -> Iterator[LocalServer]:
    """Run ``bentoml serve service:DeliveryETA`` on 127.0.0.1:<free port> until the block ends.

    Each server gets its own BENTOML_HOME (:func:`private_bentoml_home`) and prediction log,
    and renders every scrape afresh (``DELIVERY_ETA_METRICS_CACHE_S=0``), unless ``env`` says
    otherwise. The server stops without the shutdown drain (``DELIVERY_ETA_SHUTDOWN_DRAIN_S=0``: nobody
    routes to a harness server) unless the caller's environment or ``env`` sets one.
    """
    port = free_port()
    env = {**(env or {})}
    if "BENTOML_HOME" not in env:
        env["BENTOML_HOME"] = str(private_bentoml_home(log_path.parent / f"bentoml-home-{port}"))
    # A test reads /metrics right after its requests: no cached rendering unless it asks for one.
    env.setdefault("DELIVERY_ETA_METRICS_CACHE_S", "0")
    # nor share the prediction log under the user's $HOME (the setting's default)
    env.setdefault(
        "DELIVERY_ETA_PREDICTION_LOG_PATH", str(log_path.parent / f"predictions-{port}.sqlite3")
    )
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            serve_command(port),
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={"DELIVERY_ETA_SHUTDOWN_DRAIN_S": "0", **os.environ, **env},
        )
        try:
            url = f"http://127.0.0.1:{port}"
            wait_ready(url, ready_timeout_s, proc)
            yield LocalServer(
                url=url,
                proc=proc,
                log_path=log_path,
                prediction_log_path=Path(env["DELIVERY_ETA_PREDICTION_LOG_PATH"]),
            )
        finally:
            stop_process_group(proc)


class RedisServer:
    """A real redis-server process on a fixed free loopback port that tests can stop and restart."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server not installed: run `make system-deps`")
        self._binary, self._workdir = binary, workdir
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._proc = subprocess.Popen(
            [
                self._binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self._workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        client.close()

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(timeout=10)
            self._proc = None
