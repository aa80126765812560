"""Starting the servers under test, each on a free loopback port: the service (and its
batching-off and variant twins), the tutorial app and the two framework floors."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from loadtest.bench.common import (
    BENTOML_FLOOR,
    BENTOML_FLOOR_NO_TRACING,
    FASTAPI_FLOOR,
    NO_BATCH,
    REPO_ROOT,
    SERVICE,
    TUTORIAL,
    VARIANT,
    Target,
)
from loadtest.bench.probes import model_version
from loadtest.bench.workers import TargetSpec
from loadtest.servers import (
    free_port,
    private_bentoml_home,
    serve_command,
    stop_process_group,
    wait_ready,
)
from models.contract import default_contract
from models.contract.compat import compare_contracts
from models.served_contract import fetch_contract

# Start-up under a busy machine: N workers importing BentoML, pandas and sklearn at once.
READY_TIMEOUT_S = 240
UVICORN_APPS = {
    TUTORIAL: "loadtest.tutorial_app:app",
    FASTAPI_FLOOR: "loadtest.floors.fastapi_floor:app",
}
BENTOML_FLOOR_SERVICE = "loadtest.floors.bentoml_floor:BentoMLFloor"
SERVED_CONTRACT_FILE = "served-contract.json"
"""The service's contract, written into the results folder once it runs: the floors validate
the same order (``FLOOR_CONTRACT``)."""


@dataclass(frozen=True)
class Launch:
    """How to start one target: its command line and the environment it adds."""

    command: list[str]
    env: dict[str, str] = field(default_factory=dict)


def uvicorn_command(app: str, port: int, workers: int) -> list[str]:
    """``uvicorn APP --workers N`` with uvloop + httptools on 127.0.0.1:``port``.

    No access log: the tutorial app writes its own log line per request, the floor none."""
    return [
        sys.executable,
        "-m",
        "uvicorn",
        app,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--no-access-log",
    ]


def bentoml_floor_command(port: int) -> list[str]:
    """``bentoml serve`` of the BentoML floor on 127.0.0.1:``port``."""
    return [
        sys.executable,
        "-m",
        "bentoml",
        "serve",
        BENTOML_FLOOR_SERVICE,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]


def tutorial_model_path(out: Path) -> Path:
    """Where the tutorial app's fitted model is cached for this run."""
    return out / "tutorial-model.joblib"


def launch(
    spec: TargetSpec,
    port: int,
    out: Path,
    model_tag: str | None,
    variant_env: Mapping[str, str],
    service_env: Mapping[str, str] | None = None,
) -> Launch:
    """The command and environment that start ``spec`` on ``port``.

    The service's twins are pinned to ``model_tag`` (the version the first service loaded; the
    variant may re-pin) and get ``service_env`` (e.g. the columnar cells' larger call limits).
    Every BentoML server gets a private home."""
    served = out / SERVED_CONTRACT_FILE
    floor_env = {"FLOOR_CONTRACT": str(served)} if served.is_file() else {}
    if spec.server in UVICORN_APPS:
        env = {"TUTORIAL_MODEL_PATH": str(tutorial_model_path(out))}
        if spec.server == FASTAPI_FLOOR:
            env.update(floor_env)
        return Launch(uvicorn_command(UVICORN_APPS[spec.server], port, spec.workers), env)
    if spec.server in (BENTOML_FLOOR, BENTOML_FLOOR_NO_TRACING):
        # A home of its own too, but empty: the floor loads no model.
        home = out / f"home-{spec.name}"
        home.mkdir(parents=True, exist_ok=True)
        env = {"BENTOML_HOME": str(home), "BENTOML_FLOOR_WORKERS": str(spec.workers), **floor_env}
        if spec.server == BENTOML_FLOOR_NO_TRACING:
            env["BENTOML_FLOOR_TRACING"] = "off"
        return Launch(bentoml_floor_command(port), env)
    home = str(private_bentoml_home(out / f"home-{spec.name}"))
    env = {
        "BENTOML_HOME": home,
        "DELIVERY_ETA_WORKERS": str(spec.workers),
        "DELIVERY_ETA_PREDICTION_LOG_PATH": str(out / f"pl-{spec.name}.sqlite3"),
        # Nobody routes to a benchmark server: stop without the shutdown drain.
        "DELIVERY_ETA_SHUTDOWN_DRAIN_S": "0",
    }
    env.update(service_env or {})
    if model_tag:
        env["DELIVERY_ETA_MODEL_TAG"] = model_tag
    if spec.server == NO_BATCH:
        env["DELIVERY_ETA_MAX_BATCH_SIZE"] = "1"
    if spec.server == VARIANT:
        env.update(variant_env)
    return Launch(serve_command(port), env)


@contextlib.contextmanager
def spawned(launch: Launch, log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``launch`` in its own session (its workers too) until the block ends."""
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            launch.command,
            cwd=REPO_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **launch.env},
        )
        try:
            yield proc
        finally:
            stop_process_group(proc)


def fit_tutorial_model(out: Path) -> None:
    """Fit the tutorial app's model once and cache it, so its workers load it instead of each
    fitting one while the other servers start (``python -m loadtest.tutorial_app``)."""
    path = tutorial_model_path(out)
    if path.exists():
        return
    with open(out / "tutorial-fit.log", "wb") as log:
        subprocess.run(
            [sys.executable, "-m", "loadtest.tutorial_app"],
            cwd=REPO_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "TUTORIAL_MODEL_PATH": str(path)},
            check=True,
        )


def start_group(
    stack: contextlib.ExitStack,
    specs: Sequence[TargetSpec],
    out: Path,
    model_tag: str | None,
    variant_env: Mapping[str, str],
    service_env: Mapping[str, str] | None = None,
) -> list[Target]:
    """Start ``specs`` all at once, then wait until each is ready; stopped when ``stack``
    closes."""
    started = []
    for spec in specs:
        port = free_port()
        how = launch(spec, port, out, model_tag, variant_env, service_env)
        proc = stack.enter_context(spawned(how, out / f"server-{spec.name}.log"))
        started.append((spec, f"http://127.0.0.1:{port}", proc))
    for spec, url, proc in started:
        try:
            wait_ready(url, READY_TIMEOUT_S, proc)
        except (RuntimeError, TimeoutError) as exc:
            raise RuntimeError(f"{spec.name}: {exc} (log: server-{spec.name}.log)") from exc
    return [
        Target(spec.name, spec.server, spec.workers, url, proc.pid) for spec, url, proc in started
    ]


def source_state() -> str:
    """Commit and locally modified files: what code the servers ran."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
        ).stdout.split("\n")
    except OSError:
        return "unknown (no git)"
    changed = sorted(line[3:] for line in dirty if line.strip())
    return commit + (f" + uncommitted changes to {', '.join(changed)}" if changed else "")


def start_targets(
    stack: contextlib.ExitStack,
    specs: Sequence[TargetSpec],
    out: Path,
    variant_env: Mapping[str, str],
    service_env: Mapping[str, str] | None = None,
) -> tuple[list[Target], str]:
    """Start every target of ``specs``, stopped when ``stack`` closes.

    The first service target starts alone: the model version it loads pins all the service's
    twins (the same model in every BentoML server of the service), and the contract it serves
    is what the floors validate (:data:`SERVED_CONTRACT_FILE`). Then the others start
    together. Returns the targets in ``specs`` order and that model version. The tutorial app
    is the default contract's hand-written reference: a service serving another contract is
    benchmarked without it."""
    first = next(s for s in specs if s.server == SERVICE)
    (service,) = start_group(stack, [first], out, None, variant_env, service_env)
    tag = model_version(service.url)
    contract = fetch_contract(service.url)
    if compare_contracts(default_contract(), contract).changes and any(
        s.server == TUTORIAL for s in specs
    ):
        raise RuntimeError(
            f"{tag} serves another contract than the default one; the tutorial app serves the "
            f"default contract's API only: leave it out (--targets without {TUTORIAL})"
        )
    (out / SERVED_CONTRACT_FILE).write_text(json.dumps(contract.metadata()))
    if any(s.server == TUTORIAL for s in specs):
        fit_tutorial_model(out)
    rest = start_group(
        stack, [s for s in specs if s is not first], out, tag, variant_env, service_env
    )
    by_name = {t.name: t for t in [service, *rest]}
    return [by_name[s.name] for s in specs], tag
