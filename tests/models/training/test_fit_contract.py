"""Fitting on a contract with every field kind: native categories, the contract's monotonic
constraints, a calibrated interval overall and per category value, and the reports."""

from __future__ import annotations

import numpy as np
import pytest

from models.contract import default_contract, parse_contract
from models.training.config import TrainingConfig
from models.training.fit import SEGMENT_MIN_ROWS, category_inputs, linear_baseline, train_model
from models.training.model_card import render_markdown
from tests.models.training.contract_orders import CONTRACT_YAML, rich_contract, rich_training


def test_categories_are_native_and_constraints_come_from_the_contract() -> None:
    result = rich_training()
    contract = rich_contract()
    for regressor in (result.model.point_model, result.model.lower_model, result.model.upper_model):
        assert regressor.is_categorical_.tolist() == list(contract.categorical_mask)
        assert list(regressor.monotonic_cst) == list(contract.monotonic_constraints)
    assert result.model.feature_names == contract.feature_names
    levels = dict(zip(contract.feature_names, result.model.category_levels, strict=True))
    assert levels["weather"] == 3 and levels["vehicle"] == 4 and levels["city_tier"] == 3
    assert levels["distance_km"] == 0
    assert result.model.unfitted_category_codes == ()  # every code occurs in training


def test_the_interval_is_calibrated_overall_and_per_category_value() -> None:
    result = rich_training()
    assert 0.87 <= result.metrics["interval_coverage"] <= 0.93
    by_field: dict[str, list[str]] = {}
    for segment in result.segments:
        by_field.setdefault(segment["segment"], []).append(segment["value"])
        if segment["rows"] >= SEGMENT_MIN_ROWS:
            assert 0.87 <= segment["coverage"] <= 0.93, segment
    # Every value of every category field is a segment (this holdout has all of them).
    assert by_field["weather"] == ["clear", "rain", "storm"]
    assert by_field["vehicle"] == ["bike", "scooter", "car", "other"]
    assert by_field["city_tier"] == ["1", "2", "3"]
    checked = [s for s in result.segments if s["segment"] in ("weather", "vehicle", "city_tier")]
    assert sum(s["rows"] >= SEGMENT_MIN_ROWS for s in checked) >= 6


def test_the_model_learns_the_categories_and_beats_the_baselines() -> None:
    result = rich_training()
    metrics = result.metrics
    assert metrics["holdout_mae"] < 0.6 * metrics["baseline_distance_linear_mae"]
    assert metrics["baseline_distance_linear_mae"] < metrics["baseline_mean_mae"]
    contract = rich_contract()
    holdout = result.holdout
    rows = holdout[[f"feature_{n}" for n in contract.feature_names]].to_numpy()[:200]
    weather = contract.feature_names.index("weather")
    clear, storm = rows.copy(), rows.copy()
    clear[:, weather], storm[:, weather] = 0, 2  # codes of "clear" and "storm"
    lift = result.model.predict_rows(storm)[:, 0] - result.model.predict_rows(clear)[:, 0]
    assert 10 < float(np.mean(lift)) < 20  # the generator adds 15 minutes in a storm


def test_drift_reference_of_a_category_is_its_shares() -> None:
    result = rich_training()
    reference = result.reference_stats["vehicle"]
    assert reference["inner_edges"] == [0.5, 1.5, 2.5]
    assert sum(reference["shares"]) == pytest.approx(1.0, abs=1e-5)
    assert set(result.cohort_reference["shares"]) == {"distance", "entity"}


def test_codes_no_training_row_has_are_recorded_as_unfitted() -> None:
    contract = rich_contract()
    features = np.zeros((4, len(contract.feature_names)))
    vehicle = contract.feature_names.index("vehicle")
    features[:, vehicle] = [0, 1, 2, np.nan]  # never 3 ("other")
    levels, unfitted = category_inputs(contract, features)
    assert levels[vehicle] == 4
    assert unfitted[vehicle] == (3,)
    weather = contract.feature_names.index("weather")
    assert unfitted[weather] == (1, 2)  # only code 0 in these rows
    assert category_inputs(default_contract(), np.zeros((3, 5))) == ((), ())
    assert rich_training(vans=False).model.unfitted_category_codes[vehicle] == (3,)


def test_the_linear_baseline_keeps_its_name_for_the_default_contract() -> None:
    assert linear_baseline(default_contract()) == ("distance_km", "baseline_distance_linear_mae")
    uncohorted = parse_contract(
        CONTRACT_YAML.replace("    cohort:\n      dimension: distance\n      edges: [3]\n", "")
    )
    assert linear_baseline(uncohorted) == ("distance_km", "baseline_distance_km_linear_mae")


def test_the_synthetic_history_cannot_train_a_contract_with_other_fields() -> None:
    with pytest.raises(ValueError, match=r"no column for field.*weather"):
        train_model(TrainingConfig.small(), rich_contract())


def test_the_model_card_lists_the_contracts_fields_and_names_no_other() -> None:
    result = rich_training()
    metadata = {
        "metrics": result.metrics,
        "interval": {"level": result.model.interval_level},
        "training_data_sha256": result.data_hash,
        "row_counts": result.n_rows,
        "training_config": {"seed": 0, "history_fraction": 0.4},
        "segments": result.segments,
    }
    card = render_markdown("delivery_eta:test", metadata, rich_contract())
    assert "| `weather` | category | `clear`, `rain`, `storm`; any other value is refused |" in card
    assert "any other value counts as `other`" in card  # vehicle
    assert "| `items` | integer | 1 to 30 | `items` | increasing | yes |" in card
    assert "| `festival` | boolean | true/false or 1/0 |" in card
    assert (
        "| `prep_estimate_min` | number | 0 to 120 | `prep_estimate_min` | none | no (default"
        in (card)
    )
    assert "`store_id` | entity |" in card and "`store_avg_delivery_time`" in card
    assert "splits `weather`, `vehicle`, `city_tier` as native categories" in card
    assert "baseline: `distance_km`-only linear" in card
    assert "| weather: storm |" in card
    for name in ("restaurant", "driver", "peak", "order_value"):
        assert name not in card, name
