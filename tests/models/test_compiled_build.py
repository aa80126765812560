"""Building the TL2cgen library: no compiler means no library (the model still registers), a
model with categories compiles and matches sklearn (the threshold probe gives a category only
its codes), and the build's Treelite version notice is dropped from stderr, nothing else."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest

import models.compiled_build as compiled_build
from models.compiled_runtime import LIBRARY_FILE, CompiledRuntime, probe_rows
from models.model import DeliveryTimeModel
from tests.models.training.contract_orders import rich_training

ATOL = 1e-6  # minutes, absolute, all three outputs


@pytest.fixture(autouse=True)
def _models_logs_reach_caplog(monkeypatch: pytest.MonkeyPatch) -> None:
    # The service's log set-up (run in-process by some serving tests) stops propagation.
    monkeypatch.setattr(logging.getLogger("models"), "propagate", True)


def test_no_compiler_registers_without_a_library(
    registered, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(compiled_build, "compiler_available", lambda: False)
    with caplog.at_level("WARNING", logger="models.compiled_build"):
        assert compiled_build.build_library(registered.result.model, tmp_path) is None
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
    record = compiled_build.build_library(category_model, tmp_path)
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
    with compiled_build._without_treelite_version_notice():
        os.write(2, b"before\n" + notice + b"gcc: error: something real\n")
    assert capfd.readouterr().err == "before\ngcc: error: something real\n"
    with pytest.raises(RuntimeError), compiled_build._without_treelite_version_notice():
        os.write(2, b"written before a failure\n")
        raise RuntimeError("the build failed")
    assert capfd.readouterr().err == "written before a failure\n"
