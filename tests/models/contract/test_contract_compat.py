"""The client-visible compatibility of two contracts: what breaks today's requests (refused by
``make promote`` unless allowed) and what only widens the API (passes with a note)."""

from __future__ import annotations

import random

import pytest

from models.contract import FeatureContract, default_contract, parse_contract
from models.contract.bodies import OrderGenerator
from models.contract.compat import compare_contracts
from models.contract.request import order_problems
from tests.models.contract.mixed_contract import MIXED, MIXED_YAML


def _edited(old: str, new: str, text: str = MIXED_YAML) -> FeatureContract:
    assert old in text, old
    return parse_contract(text.replace(old, new))


def _changes(new: FeatureContract, current: FeatureContract = MIXED) -> dict[str, list[str]]:
    found = compare_contracts(current, new)
    return {
        "break": [str(c) for c in found.breaks],
        "widening": [str(c) for c in found.widenings],
    }


def test_the_same_contract_changes_nothing() -> None:
    assert compare_contracts(MIXED, MIXED).changes == ()
    assert compare_contracts(default_contract(), default_contract()).compatible


@pytest.mark.parametrize(
    ("old", "new", "field", "says"),
    [
        # A new required field: clients do not send it.
        (
            "  courier_id:",
            "  traffic: {kind: number, minimum: 0, maximum: 1, example: 0.5}\n  courier_id:",
            "traffic",
            "new required field",
        ),
        # A removed field: clients still send it, and unknown fields are refused.
        (
            "  festival: {kind: boolean, example: false, cohort: {dimension: festival}}\n",
            "",
            "festival",
            "removed",
        ),
        ("  city_tier: {kind: category", "  city_tier: {kind: category", None, None),
        (
            "items:\n    kind: integer",
            "items:\n    kind: number",
            "items",
            "kind changed from integer to number",
        ),
        (
            "minimum: 1, maximum: 5, example: 4.5",
            "minimum: 2, maximum: 5, example: 4.5",
            "rating",
            "range narrowed",
        ),
        ("    maximum: 40\n", "    maximum: 30\n", "items", "range narrowed from 1..40 to 1..30"),
        ("values: [sunny, rain, fog]", "values: [sunny, rain]", "weather", "values removed: 'fog'"),
        (
            "values: [bike, car], on_unseen: other",
            "values: [bike, car]",
            "vehicle",
            "unseen values were mapped to 'other', now refused",
        ),
        (
            "example: 4.5, required: false, default: 4.0",
            "example: 4.5",
            "rating",
            "optional before, now required",
        ),
        # The entity's aggregate renamed: its override field is gone.
        (
            "example: c_17",
            "example: c_17, feature: courier_speed",
            "courier_avg_delivery_time",
            "override removed",
        ),
        ("maximum: 240}", "maximum: 120}", "store_avg_delivery_time", "override range narrowed"),
    ],
)
def test_a_breaking_change_names_its_field_and_why(
    old: str, new: str, field: str | None, says: str | None
) -> None:
    candidate = _edited(old, new)
    found = compare_contracts(MIXED, candidate)
    if field is None:  # the identity edit: a control
        assert found.compatible
        return
    assert not found.compatible
    assert field in found.broken_fields
    assert any(says in str(c) for c in found.breaks if c.field == field), found.lines()
    assert all(line.startswith("API break: ") for line in found.lines()[: len(found.breaks)])


def test_a_break_really_refuses_requests_of_today() -> None:
    # The rule's premise, checked with the bodies a client of today sends.
    orders = OrderGenerator(MIXED).orders(random.Random(2), 500)
    for old, new in [
        ("values: [sunny, rain, fog]", "values: [sunny, rain]"),
        ("    maximum: 40\n", "    maximum: 6\n"),
        ("  festival: {kind: boolean, example: false, cohort: {dimension: festival}}\n", ""),
    ]:
        candidate = _edited(old, new)
        assert not compare_contracts(MIXED, candidate).compatible
        assert any(order_problems(candidate, o) for o in orders), (old, new)


@pytest.mark.parametrize(
    ("old", "new", "field", "says"),
    [
        (
            "  courier_id:",
            "  traffic: {kind: number, minimum: 0, maximum: 1, example: 0.5, required: false,"
            " default: 0.2}\n  courier_id:",
            "traffic",
            "new optional field (default 0.2)",
        ),
        ("    maximum: 40\n", "    maximum: 60\n", "items", "range widened from 1..40 to 1..60"),
        (
            "values: [sunny, rain, fog]",
            "values: [sunny, rain, fog, snow]",
            "weather",
            "values added: 'snow'",
        ),
        (
            "values: [sunny, rain, fog]",
            "values: [sunny, rain, fog]\n    on_unseen: other",
            "weather",
            "unseen values now mapped to 'other'",
        ),
        ("default: 4.0", "default: 3.5", "rating", "default changed from 4.0 to 3.5"),
        ("example: s_001", "example: s_002", None, None),  # not client-visible
    ],
)
def test_a_widening_passes_with_a_note(
    old: str, new: str, field: str | None, says: str | None
) -> None:
    candidate = _edited(old, new)
    found = compare_contracts(MIXED, candidate)
    assert found.compatible, found.lines()
    if field is None:
        assert found.changes == ()
        return
    assert [c.field for c in found.widenings] == [field]
    assert says in str(found.widenings[0])
    assert found.lines() == [f"API widening: {found.widenings[0]}"]
    # Every request of today is still valid.
    for order in OrderGenerator(MIXED).orders(random.Random(4), 300):
        assert order_problems(candidate, order) == []


def test_a_required_field_made_optional_widens() -> None:
    candidate = _edited("example: 4.5, required: false, default: 4.0", "example: 4.5")
    found = compare_contracts(candidate, MIXED)  # from required to optional
    assert found.compatible
    assert [str(c) for c in found.widenings] == ["rating: now optional (default 4.0)"]


def test_the_default_contract_to_a_users_contract_lists_every_break() -> None:
    found = compare_contracts(default_contract(), MIXED)
    assert set(default_contract().fields) <= set(found.broken_fields)  # all five removed
    assert {"store_id", "weather", "courier_id"} <= set(found.broken_fields)  # new, required
    assert "rating" not in found.broken_fields  # optional: a widening


def _with_integer_peak() -> FeatureContract:
    """The default contract as it was before is_peak_hour became a boolean (integer 0..1)."""
    data = default_contract().metadata()
    data["fields"]["is_peak_hour"] = {
        "kind": "integer",
        "minimum": 0,
        "maximum": 1,
        "example": 1,
        "monotonic": "increasing",
        "cohort": {"dimension": "peak", "edges": [1], "names": ["off_peak", "peak"]},
    }
    return FeatureContract.model_validate(data)


def test_an_integer_zero_one_becoming_a_boolean_widens_and_back_breaks() -> None:
    older, today = _with_integer_peak(), default_contract()
    forward = compare_contracts(older, today)
    assert forward.compatible and [c.field for c in forward.widenings] == ["is_peak_hour"]
    # Every request of the integer contract is still accepted by the boolean one...
    for order in OrderGenerator(older).orders(random.Random(5), 50):
        assert order_problems(today, order) == []
    # ...but not back: true is refused by the integer contract.
    back = compare_contracts(today, older)
    assert back.broken_fields == ("is_peak_hour",)
    assert order_problems(older, {**older.example_order(), "is_peak_hour": True})


def test_a_wider_integer_becoming_a_boolean_still_breaks() -> None:
    older = _with_integer_peak()
    data = older.metadata()
    data["fields"]["is_peak_hour"] |= {"maximum": 2, "cohort": None}
    assert not compare_contracts(
        FeatureContract.model_validate(data), default_contract()
    ).compatible
