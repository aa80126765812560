"""DELIVERY_ETA_MODEL_RUNTIME picks the evaluator, falls back when there is no library, and says
which one it uses."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np
import pytest

from models.compiled_runtime import LIBRARY_FILE, METADATA_KEY, CompiledRuntime
from models.runtime_selection import select_runtime
from models.settings import ModelSettings
from models.store.artifact import ModelArtifact, ModelArtifactError, load_artifact
from models.treelite_runtime import TreeliteRuntime


@pytest.fixture(autouse=True)
def _models_logs_reach_caplog(monkeypatch: pytest.MonkeyPatch) -> None:
    # The service's log set-up (run in-process by some serving tests) stops propagation.
    monkeypatch.setattr(logging.getLogger("models"), "propagate", True)


@pytest.fixture(scope="module")
def artifact(registered) -> ModelArtifact:  # type: ignore[no-untyped-def]
    return load_artifact(registered.tag)


def _with_metadata(artifact: ModelArtifact, **changes: object) -> ModelArtifact:
    metadata = {k: v for k, v in artifact.metadata.items() if k != METADATA_KEY}
    metadata.update({k: v for k, v in changes.items() if v is not None})
    return dataclasses.replace(artifact, metadata=metadata)


def test_the_default_is_the_compiled_library(
    artifact: ModelArtifact, caplog: pytest.LogCaptureFixture
) -> None:
    assert ModelSettings().model_runtime == "tl2cgen"
    with caplog.at_level("INFO", logger="models.runtime_selection"):
        runtime = select_runtime(artifact, "tl2cgen")
    assert isinstance(runtime, CompiledRuntime)
    assert "model runtime: tl2cgen" in caplog.text and LIBRARY_FILE in caplog.text
    x = np.array([[3.0, 1, 30.0, 35.0, 35.0]])
    np.testing.assert_allclose(runtime.predict_rows(x), artifact.model.predict_rows(x), atol=1e-6)


def test_a_model_without_a_library_falls_back_to_treelite_with_a_warning(
    artifact: ModelArtifact, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("WARNING", logger="models.runtime_selection"):
        runtime = select_runtime(_with_metadata(artifact), "tl2cgen", treelite_max_rows=100)
    assert isinstance(runtime, TreeliteRuntime) and runtime.max_rows == 100
    assert "treelite instead of tl2cgen" in caplog.text
    assert "no compiled library" in caplog.text


def test_a_library_built_for_another_cpu_falls_back_with_a_warning(
    artifact: ModelArtifact, caplog: pytest.LogCaptureFixture
) -> None:
    record = dict(artifact.metadata[METADATA_KEY])
    record["platform"] = {**record["platform"], "machine": "aarch64"}
    with caplog.at_level("WARNING", logger="models.runtime_selection"):
        runtime = select_runtime(_with_metadata(artifact, **{METADATA_KEY: record}), "tl2cgen")
    assert isinstance(runtime, TreeliteRuntime)
    assert "aarch64" in caplog.text


def test_a_broken_library_is_refused_not_replaced(artifact: ModelArtifact, tmp_path: Path) -> None:
    (tmp_path / "compiled").mkdir()
    (tmp_path / LIBRARY_FILE).write_bytes(b"not an ELF file")
    broken = dataclasses.replace(artifact, path=tmp_path)
    with pytest.raises(ModelArtifactError, match="cannot load"):
        select_runtime(broken, "tl2cgen")


@pytest.mark.parametrize(
    ("setting", "expected"), [("treelite", TreeliteRuntime), ("sklearn", type(None))]
)
def test_treelite_and_sklearn_are_still_selectable(
    artifact: ModelArtifact, setting: str, expected: type, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("INFO", logger="models.runtime_selection"):
        runtime = select_runtime(artifact, setting)  # type: ignore[arg-type]
    if setting == "sklearn":
        assert runtime is artifact.model
    else:
        assert isinstance(runtime, expected)
    assert f"model runtime: {setting}" in caplog.text
