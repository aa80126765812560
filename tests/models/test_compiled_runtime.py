"""The TL2cgen-compiled library: built at registration, and it predicts what sklearn predicts."""

from __future__ import annotations

import logging
import os
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
from models.model import DeliveryTimeModel
from models.store.artifact import ModelArtifactError, load_artifact, sha256_file
from tests.harness.model_copies import copy_model
from tests.models.training.contract_orders import rich_training

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


def test_no_compiler_registers_without_a_library(
    registered, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(compiled_runtime, "compiler_available", lambda: False)
    with caplog.at_level("WARNING", logger="models.compiled_runtime"):
        assert compiled_runtime.build_library(registered.result.model, tmp_path) is None
    assert "no C compiler" in caplog.text
    assert not (tmp_path / LIBRARY_FILE).exists()


@pytest.fixture(scope="module")
def category_model() -> DeliveryTimeModel:
    """A model with three category inputs whose "other" vehicle code no training row had."""
    model = rich_training(vans=False).model
    assert any(model.unfitted_category_codes)
    return model


def _category_rows(model: DeliveryTimeModel, rows: int, seed: int) -> np.ndarray:
    """Holdout-like rows whose category inputs take every code the contract allows."""
    rng = np.random.default_rng(seed)
    features = probe_rows(model, rows, seed=seed)
    plausible = rng.uniform(0, 60, features.shape)
    features = np.where(rng.random(features.shape) < 0.7, plausible, features)
    for column, levels in enumerate(model.category_levels):
        if levels:
            features[:, column] = rng.integers(0, levels, rows)
    return features


def test_probe_rows_give_a_category_only_its_codes(category_model: DeliveryTimeModel) -> None:
    probe = probe_rows(category_model, 2000, seed=3)
    for column, levels in enumerate(category_model.category_levels):
        values = np.unique(probe[:, column])
        if levels:
            assert set(values.tolist()) == set(range(levels)), column
        else:
            assert (values < 0).any() and values.max() > 1e299  # thresholds and extremes


def test_a_model_with_categories_compiles_and_matches_sklearn(
    category_model: DeliveryTimeModel, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    # build_library is what registration calls: it refuses a library without parity.
    record = compiled_runtime.build_library(category_model, tmp_path)
    assert record is not None
    # TL2cgen's Treelite 4.1 notice about the installed 4.8's checkpoint is not printed.
    assert "Treelite version" not in capfd.readouterr().err
    runtime = CompiledRuntime(category_model, tmp_path / record["file"], record)
    features = _category_rows(category_model, 3000, seed=11)
    np.testing.assert_allclose(
        runtime.predict_rows(features), category_model.predict_rows(features), rtol=0, atol=ATOL
    )
    # The code no training row had ("other") is evaluated as sklearn does (as missing): the
    # compiled trees alone would route it by their category lists, and here they differ.
    vehicle = category_model.feature_names.index("vehicle")
    (unfitted,) = category_model.unfitted_category_codes[vehicle]
    features[:, vehicle] = unfitted
    sklearn_raw = np.column_stack(
        [
            r.predict(features)
            for r in (
                category_model.point_model,
                category_model.lower_model,
                category_model.upper_model,
            )
        ]
    )
    assert np.max(np.abs(runtime.raw_outputs(np.ascontiguousarray(features)) - sklearn_raw)) > 1
    np.testing.assert_allclose(
        runtime.predict_rows(features), category_model.predict_rows(features), rtol=0, atol=ATOL
    )


def test_only_the_treelite_version_notice_is_dropped_from_stderr(
    capfd: pytest.CaptureFixture[str],
) -> None:
    notice = (
        b"[11:48:17] serializer.cc:202: The model you are loading originated from a newer "
        b"Treelite version; some functionalities may be unavailable.\n"
        b"Currently running Treelite version 4.1.2\n"
        b"The model checkpoint was generated from Treelite version 4.8.1\n"
    )
    with compiled_runtime._without_treelite_version_notice():
        os.write(2, b"before\n" + notice + b"gcc: error: something real\n")
    assert capfd.readouterr().err == "before\ngcc: error: something real\n"
    with pytest.raises(RuntimeError), compiled_runtime._without_treelite_version_notice():
        os.write(2, b"written before a failure\n")
        raise RuntimeError("the build failed")
    assert capfd.readouterr().err == "written before a failure\n"
