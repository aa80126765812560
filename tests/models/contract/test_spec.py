"""The feature contract: the default is today's five fields; every kind parses; errors name the
file, the line and the field, all at once; the derived views every module reads."""

from __future__ import annotations

from pathlib import Path

import pytest

from models.contract import (
    METADATA_KEY,
    BooleanField,
    CategoryField,
    ContractError,
    EntityField,
    FeatureContract,
    IntegerField,
    NumberField,
    contract_from_metadata,
    default_contract,
    load_contract,
    parse_contract,
)

EVERY_KIND = """\
version: 1
target:
  column: minutes
timestamp:
  column: placed_at
fields:
  store_id:
    kind: entity
    example: s_1
  courier_id:
    kind: entity
    example: c_9
    key: rider
    feature: rider_speed_score
    min_orders: 3
  distance_km:
    kind: number
    minimum: 0.1
    maximum: 40
    example: 3.0
    monotonic: increasing
    cohort:
      dimension: distance
      edges: [2, 8]
  items:
    kind: integer
    minimum: 1
    maximum: 30
    example: 3
    monotonic: decreasing
  festival:
    kind: boolean
    example: 0
    cohort:
      dimension: festival
  weather:
    kind: category
    values: [clear, rain]
    example: rain
    cohort:
      dimension: weather
  tier:
    kind: category
    values: [1, 2, 3]
    on_unseen: other
    example: 2
  prep_min:
    kind: number
    minimum: 0
    maximum: 120
    example: 10
    required: false
    default: 15
"""


def _contract(text: str = EVERY_KIND) -> FeatureContract:
    return parse_contract(text, "c.yaml")


def _errors(text: str) -> list[str]:
    with pytest.raises(ContractError) as caught:
        parse_contract(text, "c.yaml")
    lines = str(caught.value).splitlines()
    assert lines[0] == "invalid feature contract:"
    return [line.strip() for line in lines[1:]]


def test_the_default_contract_is_todays_five_fields() -> None:
    contract = default_contract()
    assert list(contract.fields) == [
        "restaurant_id",
        "driver_id",
        "distance_km",
        "is_peak_hour",
        "order_value",
    ]
    assert contract.feature_names == (
        "distance_km",
        "is_peak_hour",
        "order_value",
        "restaurant_avg_delivery_time",
        "driver_avg_delivery_time",
    )
    assert contract.monotonic_constraints == (1, 1, 1, 1, 1)
    assert contract.categorical_mask == (False,) * 5
    assert (contract.target.column, contract.timestamp.column) == (
        "delivery_time_min",
        "created_at",
    )
    assert [contract.entity_key(f) for f in contract.entity_fields] == ["restaurant", "driver"]
    peak = contract.fields["is_peak_hour"]
    # boolean: the API takes true/false as training files hold them, and 0/1 as before
    assert isinstance(peak, BooleanField)


def test_every_kind_parses_into_its_field_type() -> None:
    contract = _contract()
    kinds = {name: type(spec) for name, spec in contract.fields.items()}
    assert kinds == {
        "store_id": EntityField,
        "courier_id": EntityField,
        "distance_km": NumberField,
        "items": IntegerField,
        "festival": BooleanField,
        "weather": CategoryField,
        "tier": CategoryField,
        "prep_min": NumberField,
    }
    assert contract.fields["prep_min"].required is False
    assert contract.example_order()["tier"] == 2


def test_derived_views() -> None:
    contract = _contract()
    assert contract.direct_fields == (
        "distance_km",
        "items",
        "festival",
        "weather",
        "tier",
        "prep_min",
    )
    assert contract.entity_fields == ("store_id", "courier_id")
    assert contract.entity_features == ("store_avg_delivery_time", "rider_speed_score")
    assert contract.entity_key("courier_id") == "rider"
    assert contract.feature_names == (*contract.direct_fields, *contract.entity_features)
    assert contract.categorical_mask == (False, False, False, True, True, False, False, False)
    # Entities are increasing by default; a category is never constrained.
    assert contract.monotonic_constraints == (1, -1, 0, 0, 0, 0, 1, 1)
    assert contract.category_levels("weather") == ("clear", "rain")
    assert contract.category_levels("tier") == (1, 2, 3, "other")
    assert contract.fields_of_kind("category", "boolean") == ["festival", "weather", "tier"]
    assert contract.cohort_dimensions == {
        "distance": ("distance_km_0p1_2", "distance_km_2_8", "distance_km_8_plus"),
        "festival": ("not_festival", "festival"),
        "weather": ("weather_clear", "weather_rain"),
        "entity": ("entity_known", "entity_unknown"),
    }
    assert contract.cohort_field("weather") == "weather" and contract.cohort_field("entity") is None


def test_metadata_round_trips_and_an_old_model_has_none() -> None:
    contract = _contract()
    stored = contract.metadata()
    assert None not in _leaves(stored)  # BentoML metadata holds no None
    assert contract_from_metadata({METADATA_KEY: stored}) == contract
    assert contract_from_metadata({"feature_names": []}) is None
    with pytest.raises(ContractError, match="stored feature contract is invalid"):
        contract_from_metadata({METADATA_KEY: {**stored, "fields": {}}})


def _leaves(value: object) -> list[object]:
    if isinstance(value, dict):
        return [leaf for v in value.values() for leaf in _leaves(v)]
    if isinstance(value, list):
        return [leaf for v in value for leaf in _leaves(v)]
    return [value]


def test_an_error_names_the_file_the_line_and_the_field() -> None:
    text = EVERY_KIND.replace("    maximum: 40\n", "    maximum: -4\n")
    (error,) = _errors(text)
    # A field's own problems point at its first line (the one after its name).
    line = text.splitlines().index("  distance_km:") + 2
    assert error.startswith(f"c.yaml:{line}: fields.distance_km: ")
    assert "minimum 0.1 must be below maximum -4" in error


def test_every_problem_is_reported_at_once() -> None:
    text = (
        EVERY_KIND.replace(
            "    values: [clear, rain]\n    example: rain", "    values: [clear]\n    example: snow"
        )
        .replace("kind: boolean", "kind: flag")
        .replace("    maximum: 30\n", "    maximum: 30\n    colour: red\n")
    )
    errors = _errors(text)
    lines = text.splitlines()
    assert any(
        e.startswith(f"c.yaml:{lines.index('  weather:') + 2}: fields.weather")
        and "example 'snow' is not one of the values" in e
        for e in errors
    ), errors
    assert any(
        e.startswith(f"c.yaml:{lines.index('    colour: red') + 1}: fields.items.colour")
        for e in errors
    ), errors
    assert any("fields.festival" in e and "flag" in e for e in errors), errors


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("  column: minutes", "  column: placed_at"), "target.column and timestamp.column"),
        (("    default: 15\n", ""), "an optional field needs a default"),
        (("    required: false\n", ""), "a required field takes no default"),
        (("    on_unseen: other\n", "    on_unseen: other\n    other_value: '2'\n"), "also one"),
        (("    example: s_1", "    example: s 1"), "is not a valid id"),
        (("      edges: [2, 8]", "      edges: [8, 2]"), "strictly increasing"),
        (("  items:", "  Items:"), "fields.Items"),
    ],
)
def test_invalid_contracts_are_refused(change: tuple[str, str], message: str) -> None:
    old, new = change
    assert old in EVERY_KIND
    errors = _errors(EVERY_KIND.replace(old, new, 1))
    assert any(message in e for e in errors), errors


def test_a_contract_that_is_not_a_mapping_or_not_yaml_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ContractError, match="a contract is a mapping"):
        parse_contract("- just\n- a list\n", "c.yaml")
    with pytest.raises(ContractError, match="not valid YAML"):
        parse_contract("fields: [unclosed\n", "c.yaml")
    with pytest.raises(ContractError, match="cannot read the contract"):
        load_contract(tmp_path / "absent.yaml")
    path = tmp_path / "mine.yaml"
    path.write_text(EVERY_KIND)
    assert load_contract(path) == _contract()
