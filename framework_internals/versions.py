"""The versions every touch-point of the door was verified with, and the check that they still are."""

from __future__ import annotations

from collections.abc import Mapping
from importlib.metadata import version

VERIFIED_WITH: Mapping[str, str] = {
    "bentoml": "1.4.39",
    "uvicorn": "0.54.0",
    "prometheus-client": "0.26.0",
}
"""Installed versions every touch-point of the door was last checked against."""


class FrameworkDriftError(RuntimeError):
    """An installed framework differs from what ``framework_internals`` was verified with."""


def version_drift() -> dict[str, tuple[str, str]]:
    """``{package: (verified, installed)}`` for every package whose installed version differs."""
    installed = {name: version(name) for name in VERIFIED_WITH}
    return {
        name: (VERIFIED_WITH[name], installed[name])
        for name in VERIFIED_WITH
        if installed[name] != VERIFIED_WITH[name]
    }
