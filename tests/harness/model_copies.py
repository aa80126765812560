"""Copies of a registered model under a new version, for tests that tamper with one."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import bentoml
import yaml


def copy_model(registered: Any, tmp_path: Path, prefix: str) -> tuple[str, Path]:
    """Copy ``registered`` into the same store as ``delivery_eta:<prefix><suffix>``; returns the
    new tag and folder (the suffix comes from ``tmp_path``, unique per test)."""
    source = Path(bentoml.models.get(registered.tag).path)
    version = prefix + tmp_path.name[-8:].replace("_", "").lower()
    target = source.parent / version
    shutil.copytree(source, target)
    info = yaml.safe_load((target / "model.yaml").read_text())
    info["version"] = version
    (target / "model.yaml").write_text(yaml.safe_dump(info, sort_keys=False))
    return f"delivery_eta:{version}", target
