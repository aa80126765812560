"""Settings shared by every model tool (training, promotion, the service), from DELIVERY_ETA_*.

The service's own settings (``serving.settings.ServiceSettings``) extend these; the command-line
tools read only these, so an invalid serving-only setting cannot stop a training run.
"""

from __future__ import annotations

from typing import Literal

from pydantic_settings import BaseSettings, SettingsConfigDict

ModelRuntime = Literal["tl2cgen", "treelite", "sklearn"]
"""How the trees are evaluated: the model's TL2cgen-compiled library (falling back to
``treelite`` for a model that has none), Treelite GTIL for small batches (sklearn above), or
sklearn only. See ``models.runtime_selection``."""

ENV_PREFIX = "DELIVERY_ETA_"


class ModelSettings(BaseSettings):
    """Which model to serve and how to evaluate it (env prefix ``DELIVERY_ETA_``)."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    model_tag: str | None = None
    """Pin a model-store tag (``name:version``); unset serves the ``stage=production`` model
    (or the newest one until something has been promoted)."""

    model_runtime: ModelRuntime = "tl2cgen"
    """Tree evaluator: ``tl2cgen``, the library compiled at registration (fastest at every batch
    size; a model without one falls back to ``treelite`` with a warning), ``treelite`` (GTIL for
    small batches, sklearn above), or ``sklearn`` only. The promotion gate times candidates
    through the same one."""
