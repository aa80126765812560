"""The serving process imports no training code: importing ``service.py`` (what every worker
does) leaves the training and promotion packages, the data generator and matplotlib unloaded;
and it needs no package of the ``tools`` dependency group (pyarrow, matplotlib and what only
they bring), which the image leaves out (deploy/deploy.mk's ``requirements``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

from tests.harness.local_server import ROOT

# Training, the synthetic generator, the model card (matplotlib), the promotion gate, and the
# offline commands with the log's readers (operations/ is not even in the server's image).
TRAINING_ONLY = (
    "models.training",
    "models.promotion",
    "matplotlib",
    "operations",
    "prediction_log.reading",
    "prediction_log.sqlite_reader",
    "prediction_log.redis_reader",
)

# The project's own entry in uv.lock (its dependencies and dependency groups).
PROJECT = "delivery-eta"

# Put first on sys.meta_path in the probe: importing any of BLOCKED (top-level names) fails as
# it does in the image, where they are not installed. pandas' optional `import pyarrow` then
# falls back exactly as there.
_BLOCKER = """
import importlib.abc, sys
BLOCKED = frozenset({blocked!r})
class NotInTheImage(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}} (not in the image)", name=name)
        return None
sys.meta_path.insert(0, NotInTheImage())
"""


def _run_probe(code: str, registered, tmp_path: Path) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    """``code`` in a fresh interpreter in the repository, as a worker starts."""
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={
            **os.environ,
            "DELIVERY_ETA_MODEL_TAG": registered.tag,
            "DELIVERY_ETA_PREDICTION_LOG_PATH": str(tmp_path / "predictions.sqlite3"),
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _modules_after_import(module: str, registered, tmp_path: Path) -> list[str]:  # type: ignore[no-untyped-def]
    """Every module loaded by ``import module`` in a fresh interpreter, as a worker starts."""
    probe = f"import sys, json, {module}; print(json.dumps(sorted(sys.modules)))"
    result = _run_probe(probe, registered, tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    return list(json.loads(result.stdout.strip().splitlines()[-1]))


def _training_modules(modules: list[str]) -> list[str]:
    return [m for m in modules if m.split(".")[0] == "matplotlib" or m.startswith(TRAINING_ONLY)]


def _closure(roots: set[str], packages: dict[str, dict]) -> set[str]:  # type: ignore[type-arg]
    """``roots`` and every package they depend on in uv.lock (extras included, markers ignored:
    a superset, so what it leaves out is certainly not needed)."""
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        package = packages[name]
        todo += [d["name"] for d in package.get("dependencies", [])]
        for extra in package.get("optional-dependencies", {}).values():
            todo += [d["name"] for d in extra]
    return seen


def tools_only_distributions() -> set[str]:
    """The distributions the ``tools`` group brings and the server's dependencies do not: the
    ones deploy/requirements.txt (hence the image) leaves out."""
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    packages = {p["name"]: p for p in lock["package"]}
    project = packages[PROJECT]
    server = _closure({d["name"] for d in project["dependencies"]}, packages)
    tools = _closure({d["name"] for d in project["dev-dependencies"]["tools"]}, packages)
    return tools - server


def _canonical(distribution: str) -> str:
    return distribution.lower().replace("_", "-").replace(".", "-")


def top_level_modules(distributions: set[str]) -> dict[str, set[str]]:
    """``{distribution: its top-level import names}`` from the installed metadata (make env
    installs the tools group)."""
    found: dict[str, set[str]] = {d: set() for d in distributions}
    for module, owners in packages_distributions().items():
        for owner in owners:
            if _canonical(owner) in found:
                found[_canonical(owner)].add(module)
    return found


def test_importing_the_service_loads_no_training_code(registered, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    modules = _modules_after_import("service", registered, tmp_path)
    assert "service" in modules and "models.store.artifact" in modules
    assert _training_modules(modules) == []


def test_the_probe_sees_training_code_where_it_is_imported(registered, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # What train.py trains with (imported once its arguments are checked): the same probe must
    # report the training package there (not vacuous).
    found = _training_modules(
        _modules_after_import("models.training.release", registered, tmp_path)
    )
    assert "models.training.fit" in found
    assert "models.training.synthetic_orders" in found
    assert "matplotlib" in found


def test_the_tools_group_is_what_the_image_leaves_out() -> None:
    distributions = tools_only_distributions()
    assert {"pyarrow", "matplotlib"} <= distributions
    # Each resolves to import names, or blocking them below would block nothing.
    unresolved = [d for d, names in top_level_modules(distributions).items() if not names]
    assert unresolved == [], f"installed metadata names no module for {unresolved} (make env)"


def test_the_service_loads_its_model_without_the_tools_group(registered, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    blocked = sorted(set().union(*top_level_modules(tools_only_distributions()).values()))
    probe = _BLOCKER.format(blocked=blocked) + (
        "import os, service\n"
        "from models.store.artifact import load_artifact\n"
        "print('loaded', load_artifact(os.environ['DELIVERY_ETA_MODEL_TAG']).tag)\n"
    )
    result = _run_probe(probe, registered, tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == f"loaded {registered.tag}"


def test_the_blocked_probe_fails_where_a_tool_package_is_needed(registered, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # Training draws the model card with matplotlib: the same blocker must stop it (not vacuous).
    blocked = sorted(set().union(*top_level_modules(tools_only_distributions()).values()))
    result = _run_probe(
        _BLOCKER.format(blocked=blocked) + "import models.training.release\n", registered, tmp_path
    )
    assert result.returncode != 0
    assert "(not in the image)" in result.stderr
