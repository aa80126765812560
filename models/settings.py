"""Settings shared by every model tool (training, promotion, the service), from DELIVERY_ETA_*.

The service's own settings (``serving.settings.ServiceSettings``) extend these; the command-line
tools read only these, so an invalid serving-only setting cannot stop a training run.
"""

from __future__ import annotations

from typing import Literal

from pydantic_settings import BaseSettings, SettingsConfigDict

ModelRuntime = Literal["treelite", "sklearn"]
"""How the trees are evaluated: Treelite GTIL for small batches (sklearn above), or sklearn only."""

ENV_PREFIX = "DELIVERY_ETA_"


class ModelSettings(BaseSettings):
    """Which model to serve and how to evaluate it (env prefix ``DELIVERY_ETA_``)."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    model_tag: str | None = None
    """Pin a model-store tag (``name:version``); unset serves the ``stage=production`` model
    (or the newest one until something has been promoted)."""

    model_runtime: ModelRuntime = "treelite"
    """Tree evaluator: Treelite GTIL for small batches (much faster per call), or sklearn only.
    The promotion gate times candidates through the same one."""
