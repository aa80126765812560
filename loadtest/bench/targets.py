"""Starting the servers under test: the BentoML service (each with a private BENTOML_HOME and
prediction log) and the plain FastAPI reference app, all on free loopback ports."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from loadtest.bench.common import BENTO, NO_BATCH, REFERENCE, REPO_ROOT, VARIANT, Target
from loadtest.bench.probes import model_version
from tests.harness.local_server import free_port, local_server, stop_process_group, wait_ready


def reference_command(port: int, workers: int) -> list[str]:
    """``uvicorn loadtest.reference_app:app`` on 127.0.0.1:``port``."""
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "loadtest.reference_app:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--no-access-log",
        "--log-level",
        "warning",
    ]


@contextlib.contextmanager
def reference_server(log_path: Path, workers: int, env: dict[str, str]) -> Iterator[Target]:
    """``uvicorn loadtest.reference_app:app`` on a free loopback port until the block ends."""
    port = free_port()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            reference_command(port, workers),
            cwd=REPO_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **env},
        )
        try:
            url = f"http://127.0.0.1:{port}"
            wait_ready(url, 90, proc)
            yield Target(REFERENCE, url, proc.pid)
        finally:
            stop_process_group(proc)


def private_home(folder: Path) -> str:
    """A BENTOML_HOME of its own for one server, sharing the real model store.

    ``bentoml serve`` empties ``$BENTOML_HOME/prometheus_multiproc_dir`` when it starts, so
    two servers on one home would read each other's metrics (and lose their own)."""
    store = Path(os.environ.get("BENTOML_HOME", Path.home() / "bentoml")).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    link = folder / "models"
    if not link.exists():
        link.symlink_to((store / "models").resolve(), target_is_directory=True)
    return str(folder)


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


def service_env(workers: int) -> dict[str, str]:
    """Settings every BentoML server under test gets."""
    return {
        "DELIVERY_ETA_WORKERS": str(workers),
        "DELIVERY_ETA_LOG_LEVEL": os.environ.get("DELIVERY_ETA_LOG_LEVEL", "WARNING"),
    }


def start_service(
    stack: contextlib.ExitStack,
    out: Path,
    name: str,
    base_env: Mapping[str, str],
    extra_env: Mapping[str, str],
) -> Target:
    """One BentoML server of the service with a private store and prediction log, stopped when
    ``stack`` closes."""
    server = stack.enter_context(
        local_server(
            out / f"server-{name}.log",
            env={
                **base_env,
                "BENTOML_HOME": private_home(out / f"home-{name}"),
                "DELIVERY_ETA_PREDICTION_LOG_PATH": str(out / f"pl-{name}.sqlite3"),
                **extra_env,
            },
        )
    )
    return Target(name, server.url, server.proc.pid)


def start_targets(
    stack: contextlib.ExitStack,
    names: Sequence[str],
    out: Path,
    workers: int,
    variant_env: Mapping[str, str],
) -> tuple[dict[str, Target], str]:
    """Start the servers in ``names`` (the service first), stopped when ``stack`` closes.

    Returns them by name, and the model version the service loaded: every other server is
    pinned to it (the variant may re-pin)."""
    base = service_env(workers)
    targets = {BENTO: start_service(stack, out, BENTO, base, {})}
    tag = model_version(targets[BENTO].url)
    pinned = {"DELIVERY_ETA_MODEL_TAG": tag}
    if REFERENCE in names:
        # Same native-thread cap the service applies to its model thread (MODEL_THREADS).
        threads = os.environ.get("DELIVERY_ETA_MODEL_THREADS", "1")
        targets[REFERENCE] = stack.enter_context(
            reference_server(
                out / "server-reference.log", workers, {**pinned, "OMP_NUM_THREADS": threads}
            )
        )
    if NO_BATCH in names:
        no_batch = {**pinned, "DELIVERY_ETA_MAX_BATCH_SIZE": "1"}
        targets[NO_BATCH] = start_service(stack, out, NO_BATCH, base, no_batch)
    if VARIANT in names:
        targets[VARIANT] = start_service(stack, out, VARIANT, base, {**pinned, **variant_env})
    return targets, tag
