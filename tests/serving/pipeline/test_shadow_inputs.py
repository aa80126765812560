"""A challenger with another contract: refused when the requests cannot feed it (naming the
field), scored on its own input when they can but the two models' inputs differ."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from models.contract import FeatureContract, default_contract, parse_contract
from models.contract.compat import challenger_input_problems
from models.features import EntityFeatures, training_frame
from models.store.artifact import load_artifact
from prediction_log.settings import PredictionLogSettings
from serving.pipeline.prediction_pipeline import PredictionPipeline
from serving.pipeline.shadow import ChallengerInputs
from serving.schema import order_model
from serving.settings import ServiceSettings, ShadowSettings
from serving.startup import build_feature_store, build_metrics, build_pipeline
from tests.harness.contract_models import kitchen_contract, request_body, subset_contract

KITCHEN = kitchen_contract()


def _changed(contract: FeatureContract, **fields: Any) -> FeatureContract:
    """``contract`` with some fields replaced (a value of None drops the field)."""
    data = contract.metadata()
    for name, spec in fields.items():
        if spec is None:
            data["fields"].pop(name)
        else:
            data["fields"][name] = spec
    data["examples"] = []
    return parse_contract(yaml.safe_dump(data, sort_keys=False))


def _problem(served: FeatureContract, challenger: FeatureContract) -> str:
    (problem,) = challenger_input_problems(served, challenger)
    return problem


def test_a_challenger_of_the_same_contract_or_a_subset_of_it_has_no_problem() -> None:
    assert challenger_input_problems(KITCHEN, KITCHEN) == []
    assert challenger_input_problems(KITCHEN, subset_contract()) == []
    # An optional field the requests lack: the challenger takes its default.
    extra = {"kind": "integer", "minimum": 0, "maximum": 9, "example": 1, "required": False,
             "default": 0}  # fmt: skip
    assert challenger_input_problems(KITCHEN, _changed(KITCHEN, floors=extra)) == []


def test_a_required_field_the_requests_do_not_carry_is_named() -> None:
    problems = challenger_input_problems(default_contract(), KITCHEN)
    named = {problem.split("'")[1] for problem in problems}
    assert named == {"kitchen_id", "km", "rush", "weather", "vehicle"}
    assert all("requests do not carry it" in problem for problem in problems)


def test_a_field_of_another_kind_is_named() -> None:
    as_integer = {"kind": "integer", "minimum": 0, "maximum": 5, "example": 1}
    problem = _problem(KITCHEN, _changed(KITCHEN, rush=as_integer))
    assert "'rush'" in problem and "integer" in problem and "boolean" in problem
    # An integer of 0..1 is the same yes/no: the model reads the boolean as 0/1.
    zero_one = {"kind": "integer", "minimum": 0, "maximum": 1, "example": 1}
    assert challenger_input_problems(KITCHEN, _changed(KITCHEN, rush=zero_one)) == []


def test_bounds_the_served_api_does_not_guarantee_are_named() -> None:
    narrower = {"kind": "number", "minimum": 0.1, "maximum": 20, "example": 3.5}
    problem = _problem(KITCHEN, _changed(KITCHEN, km=narrower))
    assert "'km'" in problem and "0.1..40" in problem and "0.1..20" in problem


def test_category_values_the_served_api_accepts_and_the_challenger_refuses_are_named() -> None:
    fewer = {"kind": "category", "values": ["sunny", "rain"], "example": "rain"}
    problem = _problem(KITCHEN, _changed(KITCHEN, weather=fewer))
    assert "'weather'" in problem and "storm" in problem
    # The served API takes any vehicle (unseen ones are its "other"): a challenger refusing
    # unseen vehicles cannot take them.
    closed = {"kind": "category", "values": ["bike", "scooter", "car"], "example": "bike"}
    assert "'vehicle'" in _problem(KITCHEN, _changed(KITCHEN, vehicle=closed))
    # A challenger mapping unseen values to its own "other" takes whatever the API accepts.
    open_fewer = {**fewer, "on_unseen": "other"}
    assert challenger_input_problems(KITCHEN, _changed(KITCHEN, weather=open_fewer)) == []


def _entities(contract: FeatureContract, value: float) -> EntityFeatures:
    return EntityFeatures(
        tables={feature: {"k_001": value} for feature in contract.entity_features},
        defaults=dict.fromkeys(contract.entity_features, 30.0),
        history_end="2026-03-01",
    )


def test_the_champions_matrix_is_reused_only_for_the_same_inputs() -> None:
    same = _entities(KITCHEN, 20.0)
    assert ChallengerInputs.needed(KITCHEN, same, KITCHEN, _entities(KITCHEN, 20.0)) is None
    # Same contract, other entity tables (retrained on newer history): its own aggregates.
    assert ChallengerInputs.needed(KITCHEN, same, KITCHEN, _entities(KITCHEN, 21.0)) is not None
    subset = subset_contract()
    inputs = ChallengerInputs.needed(KITCHEN, same, subset, _entities(subset, 20.0))
    assert inputs is not None and inputs.absent == {}  # every field it reads is carried


def test_the_challengers_own_input_is_its_training_frame_of_the_same_orders() -> None:
    extra = {"kind": "integer", "minimum": 0, "maximum": 9, "example": 1, "required": False,
             "default": 4}  # fmt: skip
    challenger = _changed(subset_contract(), floors=extra)
    entities = _entities(challenger, 17.0)
    inputs = ChallengerInputs.needed(KITCHEN, _entities(KITCHEN, 20.0), challenger, entities)
    assert inputs is not None and inputs.absent == {"floors": 4}
    model = order_model(KITCHEN)
    bodies = [
        {**KITCHEN.example_order(), "kitchen_id": "k_001", "weather": "storm", "km": 7.5},
        {**KITCHEN.example_order(), "kitchen_id": "k_new", "kitchen_mean_minutes": 44.0},
    ]
    matrix = inputs.matrix([model.model_validate(body) for body in bodies])
    rows = [{**body, "floors": 4} for body in bodies]
    expected = training_frame(pd.DataFrame(rows), challenger, entities).to_numpy()
    # The override the served API carries is the challenger's too: 44, not the default 30.
    expected[1, challenger.feature_names.index("kitchen_mean_minutes")] = 44.0
    np.testing.assert_array_equal(matrix, expected)


async def test_a_challenger_on_a_subset_of_the_fields_scores_its_own_input(
    kitchen_model: Any, subset_model: Any, tmp_path: Path
) -> None:
    champion, challenger = load_artifact(kitchen_model.tag), load_artifact(subset_model.tag)
    assert challenger_input_problems(champion.contract, challenger.contract) == []
    settings = ServiceSettings(
        prediction_log=PredictionLogSettings(path=tmp_path / "predictions.sqlite3"),
        shadow=ShadowSettings(model_tag=challenger.tag, interval_ms=10_000),
    )
    store = build_feature_store(settings, champion)
    pipeline: PredictionPipeline = build_pipeline(
        settings,
        champion,
        store,
        build_metrics(champion, store, challenger),
        challenger=challenger,
    )
    holdout = kitchen_model.parts["holdout"].head(50)
    model = order_model(champion.contract)
    orders = [model.model_validate(request_body(row, KITCHEN)) for row in holdout.itertuples()]
    try:
        batch = await pipeline.predict(orders)
        # The champion answers as offline, on its own input.
        champion_offline = kitchen_model.result.holdout.head(50)["predicted"].to_numpy()
        np.testing.assert_allclose(batch.outputs[:, 0], champion_offline, rtol=0, atol=1e-6)
        # The challenger scores what it would have scored offline on its own features.
        challenger_offline = challenger.model.predict_rows(
            training_frame(holdout, challenger.contract, challenger.entities).to_numpy()
        )
        for prediction_id, expected in zip(batch.prediction_ids, challenger_offline, strict=True):
            joined = await pipeline.feedback(prediction_id, 30.0)
            assert joined.record is not None and joined.record.shadow is not None
            shadow = joined.record.shadow
            assert shadow.model_version == challenger.tag
            np.testing.assert_allclose(
                [shadow.predicted, shadow.lower, shadow.upper], expected, rtol=0, atol=1e-6
            )
        assert not np.allclose(challenger_offline[:, 0], batch.outputs[:, 0], atol=0.5)
    finally:
        await pipeline.close_shadow()
        pipeline.close()
        assert pipeline.prediction_log is not None
        await pipeline.prediction_log.close()
        await store.close()


@pytest.mark.parametrize("direction", ["default_serves", "kitchen_serves"])
def test_challengers_the_requests_cannot_feed_are_named_either_way(direction: str) -> None:
    served, challenger = default_contract(), KITCHEN
    if direction == "kitchen_serves":
        served, challenger = challenger, served
    problems = challenger_input_problems(served, challenger)
    assert problems and all("not in the served API" in p for p in problems)
