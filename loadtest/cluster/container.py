"""The stack's replicas as the container image (issue 27: "as the image when a Docker engine is
available"): the image ``make image`` builds, run the way deploy/k8s runs it (read-only root,
writable tmpfs where the server writes, non-root, no capabilities), on host networking bound to
127.0.0.1, so HAProxy, Prometheus and the tests reach it on loopback exactly as a process.

A replica is the ``docker run`` client in the foreground: its output is the container's log, and
it exits when the container does. Signals go through the engine (``docker kill --signal``) to the
container's PID 1, the BentoML server, as a kubelet sends them to a pod.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from pathlib import Path

from loadtest.servers import ROOT

IMAGE_NAME = "delivery-eta-cluster"
"""The repository of the stack's image: its own, so the image ``make image`` tags for release
is never replaced by one packing the tests' models."""

IMAGE_USER = "1034:1034"
"""BentoML's image user ``bentoml`` (deploy/k8s/base/workload/deployment.yaml runAsUser)."""

CONTAINER_HOME = "/var/lib/bentoml"
CONTAINER_DATA = "/var/lib/delivery-eta"


def docker_unavailable() -> str | None:
    """Why no Docker engine answers here, or None when one does."""
    try:
        result = subprocess.run(
            ["docker", "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"docker info: {error}"
    if result.returncode != 0:
        return f"docker info: {result.stderr.strip().splitlines()[-1:] or result.returncode}"
    return None


def build_image(model_tag: str, shadow_model_tag: str | None, log_path: Path) -> str:
    """``make image`` with ``model_tag`` (and the shadow's) packed in, from the model store of
    ``$BENTOML_HOME``; returns the image reference. The output goes to ``log_path``."""
    image_tag = model_tag.split(":", 1)[1]
    command = [
        "make",
        "--no-print-directory",
        "-C",
        str(ROOT),
        "image",
        f"MODEL_TAG={model_tag}",
        f"IMAGE_NAME={IMAGE_NAME}",
        f"IMAGE_TAG={image_tag}",
    ]
    if shadow_model_tag is not None:
        command.append(f"SHADOW_MODEL_TAG={shadow_model_tag}")
    with open(log_path, "ab") as log:
        result = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        raise RuntimeError(f"`{' '.join(command)}` failed ({result.returncode}): see {log_path}")
    return f"{IMAGE_NAME}:{image_tag}"


def run_command(name: str, image: str, port: int, env: Mapping[str, str]) -> list[str]:
    """``docker run`` of one replica in the foreground, with the service's settings of ``env``
    (its ``DELIVERY_ETA_*`` variables; the host's own environment stays out)."""
    tmpfs = "rw,nosuid,nodev,size=256m"
    owned = f"{tmpfs},uid=1034,gid=1034,mode=0755"
    settings = {k: v for k, v in env.items() if k.startswith("DELIVERY_ETA_")}
    settings["DELIVERY_ETA_PREDICTION_LOG_PATH"] = f"{CONTAINER_DATA}/predictions.sqlite3"
    command = [
        "docker",
        "run",
        "--rm",
        "--name",
        name,
        "--network",
        "host",
        "--read-only",
        "--tmpfs",
        f"/tmp:{tmpfs}",
        "--tmpfs",
        f"{CONTAINER_HOME}:{owned}",
        "--tmpfs",
        f"{CONTAINER_DATA}:{owned}",
        "--user",
        IMAGE_USER,
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        "-e",
        f"BENTOML_HOME={CONTAINER_HOME}",
        "-e",
        "BENTOML_HOST=127.0.0.1",
        "-e",
        f"PORT={port}",
    ]
    for key, value in sorted(settings.items()):
        command += ["-e", f"{key}={value}"]
    return [*command, image]


def signal_container(name: str, signal_name: str) -> None:
    """Send ``signal_name`` (KILL, TERM) to the container's PID 1 through the engine."""
    subprocess.run(
        ["docker", "kill", "--signal", signal_name, name],
        check=True,
        capture_output=True,
        timeout=30,
    )


def remove_container(name: str) -> None:
    """Remove ``name`` if a container of that name is left (a previous run's, or one being
    removed by ``--rm``), so a restart can take the name again."""
    subprocess.run(
        ["docker", "rm", "--force", name],
        capture_output=True,
        timeout=60,
    )
