"""The TL2cgen-compiled library: registration stores it, it predicts what sklearn predicts, and
a library that is missing, altered, of another format or without parity is refused."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import models.compiled_runtime as compiled_runtime
from models.compiled_runtime import (
    LIBRARY_FILE,
    METADATA_KEY,
    CompiledLibraryError,
    CompiledRuntime,
    probe_rows,
)
from models.store.artifact import ModelArtifactError, load_artifact, sha256_file
from tests.harness.model_copies import copy_model

ATOL = 1e-6  # minutes, absolute, all three outputs


@pytest.fixture(autouse=True)
def _models_logs_reach_caplog(monkeypatch: pytest.MonkeyPatch) -> None:
    # The service's log set-up (run in-process by some serving tests) stops propagation.
    monkeypatch.setattr(logging.getLogger("models"), "propagate", True)


@pytest.fixture(scope="module")
def compiled(registered) -> CompiledRuntime:  # type: ignore[no-untyped-def]
    if shutil.which("gcc") is None:
        pytest.fail("gcc not installed: the compiled runtime is built with it at registration")
    artifact = load_artifact(registered.tag)
    record = artifact.metadata[METADATA_KEY]
    return CompiledRuntime(artifact.model, artifact.path / record["file"], record)


def _random_rows(rng: np.random.Generator, rows: int) -> np.ndarray:
    """Plausible orders, and far outside anything the API accepts."""
    plausible = np.column_stack(
        [
            rng.uniform(0.0, 60, rows),
            rng.integers(0, 2, rows),
            rng.uniform(0, 600, rows),
            rng.uniform(0, 150, rows),
            rng.uniform(0, 150, rows),
        ]
    )
    wild = rng.choice([-1e300, -1e6, -1.0, 0.0, 1e-12, 1e6, 1e300], size=(rows, 5))
    return np.where(rng.random((rows, 5)) < 0.1, wild, plausible)


def test_registration_stores_the_library_with_its_record(registered) -> None:  # type: ignore[no-untyped-def]
    record = load_artifact(registered.tag).metadata[METADATA_KEY]
    library = registered.path / LIBRARY_FILE
    assert record["file"] == LIBRARY_FILE and library.is_file()
    assert record["sha256"] == sha256_file(library)
    assert record["format"] == compiled_runtime.FORMAT
    assert len(record["base_scores"]) == 3
    assert {"system", "machine", "libc"} <= set(record["platform"])
    assert record["tl2cgen"] and record["compiler"] != "unknown"


@pytest.mark.parametrize("rows", [1, 2, 7, 32, 256, 257, 1000, 2000])
def test_matches_sklearn_on_random_rows(compiled: CompiledRuntime, registered, rows: int) -> None:  # type: ignore[no-untyped-def]
    model = registered.result.model
    features = _random_rows(np.random.default_rng(rows), rows)
    got = compiled.predict_rows(features)
    assert got.shape == (rows, 3)
    np.testing.assert_allclose(got, model.predict_rows(features), rtol=0, atol=ATOL)


def test_matches_sklearn_at_every_split_threshold(compiled: CompiledRuntime, registered) -> None:  # type: ignore[no-untyped-def]
    # Every threshold of every tree, the doubles either side of it, and extremes.
    model = registered.result.model
    features = probe_rows(model, 20_000, seed=1)
    np.testing.assert_allclose(
        compiled.predict_rows(features), model.predict_rows(features), rtol=0, atol=ATOL
    )


def test_matches_sklearn_on_the_holdout(compiled: CompiledRuntime, registered) -> None:  # type: ignore[no-untyped-def]
    holdout = registered.result.holdout
    features = holdout[[c for c in holdout.columns if c.startswith("feature_")]].to_numpy()
    got = compiled.predict_rows(features)
    np.testing.assert_allclose(got, registered.result.model.predict_rows(features), atol=ATOL)
    np.testing.assert_allclose(got[:, 0], holdout["predicted"].to_numpy(), rtol=0, atol=ATOL)


def test_missing_values_take_the_same_branches_as_sklearn(
    compiled: CompiledRuntime, registered
) -> None:  # type: ignore[no-untyped-def]
    features = _random_rows(np.random.default_rng(5), 500)
    features[np.random.default_rng(6).random(features.shape) < 0.2] = np.nan
    np.testing.assert_allclose(
        compiled.predict_rows(features),
        registered.result.model.predict_rows(features),
        rtol=0,
        atol=ATOL,
    )


def test_values_tl2cgen_would_read_as_missing_are_evaluated_by_sklearn(
    compiled: CompiledRuntime, registered
) -> None:  # type: ignore[no-untyped-def]
    model = registered.result.model
    features = _random_rows(np.random.default_rng(8), 400)
    words = features.view(np.uint64)
    words[::2] |= np.uint64(0xFFFFFFFF)  # low 32 bits all ones: TL2cgen's "missing" sentinel
    raw = compiled.raw_outputs(np.ascontiguousarray(features))
    sklearn_raw = np.column_stack(
        [r.predict(features) for r in (model.point_model, model.lower_model, model.upper_model)]
    )
    # The quirk is real (so the guard is not vacuous) ...
    assert np.max(np.abs(raw - sklearn_raw)) > ATOL
    # ... and predict_rows does not show it.
    np.testing.assert_allclose(
        compiled.predict_rows(features), model.predict_rows(features), rtol=0, atol=ATOL
    )


def test_empty_and_non_contiguous_inputs(compiled: CompiledRuntime, registered) -> None:  # type: ignore[no-untyped-def]
    assert compiled.predict_rows(np.empty((0, 5))).shape == (0, 3)
    wide = _random_rows(np.random.default_rng(9), 64)
    strided = np.asfortranarray(wide)[::2]
    np.testing.assert_allclose(
        compiled.predict_rows(strided),
        registered.result.model.predict_rows(strided),
        rtol=0,
        atol=ATOL,
    )


def test_a_library_that_does_not_reproduce_the_model_is_refused(registered) -> None:  # type: ignore[no-untyped-def]
    artifact = load_artifact(registered.tag)
    record: dict[str, Any] = dict(artifact.metadata[METADATA_KEY])
    record["base_scores"] = [b + 0.01 for b in record["base_scores"]]
    with pytest.raises(CompiledLibraryError, match="does not reproduce the model"):
        CompiledRuntime(artifact.model, artifact.path / record["file"], record)


def test_a_library_of_another_format_is_refused(registered) -> None:  # type: ignore[no-untyped-def]
    artifact = load_artifact(registered.tag)
    record = {**artifact.metadata[METADATA_KEY], "format": "something-else"}
    with pytest.raises(CompiledLibraryError, match="format"):
        CompiledRuntime(artifact.model, artifact.path / record["file"], record)


def test_a_missing_library_is_refused_at_load(registered, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    tag, path = copy_model(registered, tmp_path, "compiled")
    (path / LIBRARY_FILE).unlink()
    with pytest.raises(ModelArtifactError, match=r"compiled library .* it does not have"):
        load_artifact(tag)


def test_an_altered_library_is_refused_at_load(registered, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    tag, path = copy_model(registered, tmp_path, "compiled")
    with (path / LIBRARY_FILE).open("ab") as handle:
        handle.write(b"\0")
    with pytest.raises(ModelArtifactError, match="does not match its recorded sha256"):
        load_artifact(tag)
