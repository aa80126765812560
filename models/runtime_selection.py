"""Which evaluator runs a served model's trees (``DELIVERY_ETA_MODEL_RUNTIME``), and the log line
that says so.

``tl2cgen`` (default): the model's compiled library (``models.compiled_runtime``). A model that
has none -- registered before libraries were built, or where no C compiler was installed -- or
whose library was built for another OS/CPU falls back to ``treelite`` with a warning. A library
that is recorded but missing or altered is refused by ``load_artifact``; one that does not load
or does not reproduce the model is refused here (:class:`ModelArtifactError`): the server must
not start on it, nor quietly run several times slower than it was sized for.

``treelite``: Treelite GTIL for batches up to ``treelite_max_rows``, sklearn above.
``sklearn``: the model's own ``predict_rows``.
"""

from __future__ import annotations

import logging
from typing import Protocol

import numpy as np

from models.compiled_runtime import (
    METADATA_KEY,
    CompiledLibraryError,
    CompiledRuntime,
    platform_mismatch,
)
from models.settings import ModelRuntime
from models.store.artifact import ModelArtifact, ModelArtifactError
from models.treelite_runtime import TreeliteRuntime

logger = logging.getLogger(__name__)


class RowPredictor(Protocol):
    """Anything with the ``predict_rows`` contract of ``DeliveryTimeModel``."""

    def predict_rows(self, features: np.ndarray) -> np.ndarray: ...


def select_runtime(
    artifact: ModelArtifact,
    runtime: ModelRuntime,
    *,
    treelite_max_rows: int = 256,
    announce: bool = True,
) -> RowPredictor:
    """The evaluator for ``artifact`` under setting ``runtime``; logs which one it is.

    Raises :class:`ModelArtifactError` when the model's compiled library is unusable.
    ``announce=False`` only checks (no log lines): the serving process does that before it
    starts workers, so that an unusable library stops the server instead of its workers.
    """
    log = logger.log if announce else _silent
    if runtime == "sklearn":
        log(logging.INFO, "model runtime: sklearn (model %s)", artifact.tag)
        return artifact.model
    if runtime == "tl2cgen":
        record = artifact.metadata.get(METADATA_KEY)
        if record is None:
            reason = "the model has no compiled library (registered without a C compiler or before they were built)"
        else:
            reason = platform_mismatch(record) or ""
        if not reason:
            assert record is not None
            try:
                compiled = CompiledRuntime(artifact.model, artifact.path / record["file"], record)
            except CompiledLibraryError as exc:
                raise ModelArtifactError(f"model {artifact.tag}: {exc}") from None
            log(
                logging.INFO,
                "model runtime: tl2cgen (model %s, %s, tl2cgen %s, %s)",
                artifact.tag,
                record["file"],
                record.get("tl2cgen"),
                record.get("compiler"),
            )
            return compiled
        log(
            logging.WARNING,
            "model runtime: treelite instead of tl2cgen for model %s: %s; "
            "GTIL up to %d rows, sklearn above",
            artifact.tag,
            reason,
            treelite_max_rows,
        )
        return TreeliteRuntime(artifact.model, max_rows=treelite_max_rows)
    log(
        logging.INFO,
        "model runtime: treelite (model %s, GTIL up to %d rows, sklearn above)",
        artifact.tag,
        treelite_max_rows,
    )
    return TreeliteRuntime(artifact.model, max_rows=treelite_max_rows)


def _silent(level: int, msg: str, *args: object) -> None:
    """A ``logger.log`` that says nothing."""
