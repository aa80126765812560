"""The Treelite runtime predicts what the sklearn model predicts."""

import numpy as np
import pytest

from models.treelite_runtime import TreeliteRuntime
from tests.models.training.contract_orders import rich_training


@pytest.mark.parametrize("rows", [1, 7, 256, 257, 1500])
def test_treelite_runtime_matches_sklearn(registered, rows: int) -> None:  # type: ignore[no-untyped-def]
    model = registered.result.model
    runtime = TreeliteRuntime(model, max_rows=256)
    rng = np.random.default_rng(rows)
    features = np.column_stack(
        [
            rng.uniform(0.1, 50, rows),
            rng.integers(0, 2, rows),
            rng.uniform(0, 500, rows),
            rng.uniform(5, 120, rows),
            rng.uniform(5, 120, rows),
        ]
    )
    np.testing.assert_allclose(
        runtime.predict_rows(features), model.predict_rows(features), rtol=0, atol=1e-9
    )


def test_holdout_parity(registered) -> None:  # type: ignore[no-untyped-def]
    holdout = registered.result.holdout
    features = holdout[[c for c in holdout.columns if c.startswith("feature_")]].to_numpy()[:200]
    runtime = TreeliteRuntime(registered.result.model)
    np.testing.assert_allclose(
        runtime.predict_rows(features)[:, 0],
        holdout["predicted"].to_numpy()[:200],
        rtol=0,
        atol=1e-9,
    )


def test_a_model_with_categories_matches_sklearn_for_every_allowed_code() -> None:
    model = rich_training(vans=False).model
    rng = np.random.default_rng(4)
    holdout = rich_training(vans=False).holdout
    features = holdout[[f"feature_{n}" for n in model.feature_names]].to_numpy()[:200].copy()
    for column, levels in enumerate(model.category_levels):
        if levels:  # every code, including "other", which no training row had
            features[:, column] = rng.integers(0, levels, len(features))
    assert any(model.unfitted_category_codes)
    runtime = TreeliteRuntime(model, max_rows=256)
    np.testing.assert_allclose(
        runtime.predict_rows(features), model.predict_rows(features), rtol=0, atol=1e-9
    )
