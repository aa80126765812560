"""A column of a few elements is checked in Python, a long one in numpy: both ways give the same
column and the same refusal, for valid and invalid data, JSON and binary alike."""

from __future__ import annotations

import math
import random
import re
from typing import Any

import numpy as np
import pytest

from serving.inference_protocol import InferenceRequestError, validation
from serving.inference_protocol.inputs import InputSpec
from serving.inference_protocol.validation import SMALL_COLUMN, check_column, checked_in_numpy
from tests.models.contract.mixed_contract import MIXED
from tests.serving.inference_protocol.protocol_bodies import DEFAULT_SPECS, specs_of

EXTRA_SPECS = (
    InputSpec("zone", "integer_or_string", required=True, max_length=6),
    InputSpec("tier", "integer_or_string", required=True, allowed=(1, 2, "gold")),
    InputSpec("load", "number", required=True, minimum=-1.5, maximum=2, exclusive_maximum=True),
    InputSpec("code", "string", required=True, pattern=re.compile("[0-9]"), min_length=2),
    InputSpec("huge", "integer", required=True, minimum=-(2**70), maximum=2**53 + 1),
    InputSpec("far", "number", required=True, maximum=2**53 + 1, exclusive_maximum=True),
)
SPECS = {s.name: s for s in (*DEFAULT_SPECS, *specs_of(MIXED), *EXTRA_SPECS)}

# Elements worth trying: each kind's valid values, the bounds and just past them, and every
# wrong type JSON can carry.
WRONG = [None, True, False, "1", "x", [1.0], {"a": 1}]
NUMBERS = [0, 1, 2, 0.1, 0.0999, 5, 4.9999, 50, 50.0001, 240, 300, 300.0001, -1.5, 1.9999]
NUMBERS += [math.nan, math.inf, -math.inf, 2**53, 2**53 + 1, 2**60, 10**400, -(10**400), 1e308]
INTEGERS = [0, 1, 2, 3, 4, 7, 40, 41, -1, 2**53 - 1, 2**53, 2**53 + 1, 2**63, -(2**63) - 1, 1.0]
TEXTS = ["r_1", "d_22", "a b", "", "x" * 64, "x" * 65, "x" * 129, "sunny", "fog", "snow"]
TEXTS += ["1", "2", "-3", "gold", "12", "ab1", "é", "07", "-", "1234567", "²", "-²"]


def _pool(spec: InputSpec) -> list[Any]:
    kind = spec.kind
    if kind == "boolean":
        return [True, False, 0, 1, None, "true", 1.0]
    if kind == "integer":
        return INTEGERS + WRONG
    if kind == "number":
        return NUMBERS + INTEGERS + WRONG
    return [*TEXTS, 0, 1, 2.5, None, True]


def _outcome(check: Any, *args: Any, **kwargs: Any) -> tuple[Any, ...]:
    try:
        value = check(*args, **kwargs)
    except InferenceRequestError as exc:
        return ("refused", str(exc), exc.input_name)
    except Exception as exc:  # both ways must fail alike, even in a way they should not
        return ("raised", type(exc).__name__)
    if isinstance(value, np.ndarray):
        return ("array", value.dtype.str, [repr(v) for v in value.tolist()])
    return ("list", [(type(v).__name__, v) for v in value])


def _binary(spec: InputSpec, data: list[Any]) -> Any:
    """``data`` as the binary decoder hands it on, or None when the wire cannot carry it."""
    try:
        if spec.kind == "number":
            return np.array(data, dtype=np.float64)
        if spec.kind == "integer":
            return np.array(data, dtype=np.int64)
        if spec.kind == "boolean":
            return np.array(data, dtype=np.uint8).astype(np.bool_) if set(data) <= {0, 1} else None
    except (TypeError, ValueError, OverflowError):
        return None
    return data if all(type(v) is str for v in data) else None


@pytest.mark.parametrize("name", sorted(SPECS))
def test_a_small_column_is_checked_as_numpy_checks_it(name: str) -> None:
    spec, rng = SPECS[name], random.Random(name)
    pool = _pool(spec)
    for _ in range(600):
        data = [rng.choice(pool) for _ in range(rng.randint(1, 4))]
        small = _outcome(check_column, spec, list(data), len(data))
        whole = _outcome(checked_in_numpy, spec, list(data))
        assert small == whole, data
        decoded = _binary(spec, data)
        if decoded is not None:
            small = _outcome(check_column, spec, decoded, len(data), json_data=False)
            whole = _outcome(checked_in_numpy, spec, decoded, json_data=False)
            assert small == whole, data


def test_valid_small_columns_never_reach_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_numpy(*_: Any, **__: Any) -> None:
        raise AssertionError("checked in numpy")

    monkeypatch.setattr(validation, "checked_in_numpy", no_numpy)
    by_name = {s.name: s for s in DEFAULT_SPECS}
    column = check_column(by_name["distance_km"], [3.2] * SMALL_COLUMN, SMALL_COLUMN)
    assert column.dtype == np.float64 and column.tolist() == [3.2] * SMALL_COLUMN
    assert check_column(by_name["driver_id"], ["d_1"], 1) == ["d_1"]
    assert check_column(by_name["is_peak_hour"], [True], 1).tolist() == [True]
    override = check_column(by_name["driver_avg_delivery_time"], [None, 12], 2)
    assert np.isnan(override[0]) and override[1] == 12.0
    with pytest.raises(AssertionError, match="checked in numpy"):  # past the size: numpy
        check_column(by_name["distance_km"], [3.2] * (SMALL_COLUMN + 1), SMALL_COLUMN + 1)


def test_an_invalid_small_column_is_refused_by_the_numpy_check() -> None:
    spec = {s.name: s for s in DEFAULT_SPECS}["distance_km"]
    with pytest.raises(InferenceRequestError, match=r"'distance_km': 1 element.*index 1: '99.0'"):
        check_column(spec, [1.0, 99.0], 2)


def test_digits_int_refuses_stay_text_in_a_mixed_category() -> None:
    # str.isdigit holds for "²", which int() refuses: it was a ValueError (a 500), now text.
    zone, tier = SPECS["zone"], SPECS["tier"]
    assert check_column(zone, ["²", "-²", "7"], 3) == ["²", "-²", 7]
    assert check_column(zone, ["²"] * (SMALL_COLUMN + 1), SMALL_COLUMN + 1) == ["²"] * (
        SMALL_COLUMN + 1
    )
    with pytest.raises(InferenceRequestError, match="'tier'"):
        check_column(tier, ["²"], 1)


def _first_text_refusal(spec: InputSpec, values: list[str]) -> str | None:
    """The refusal of a text column, row by row: the rules in order, each naming how many rows
    break it and the first of them (what the once-per-distinct-value check must say too)."""
    match = None
    if spec.pattern is not None:
        pattern = spec.pattern
        match = pattern.fullmatch if pattern.pattern.startswith("^") else pattern.search
    allowed = None if spec.allowed is None else {str(v) for v in spec.allowed}
    rules = [
        (
            lambda v: spec.max_length is not None and len(v) > spec.max_length,
            f"longer than {spec.max_length} characters",
        ),
        (lambda v: len(v) < spec.min_length, f"shorter than {spec.min_length}"),
        (
            lambda v: allowed is not None and v not in allowed,
            f"not one of {list(spec.allowed or ())}",
        ),
        (
            lambda v: match is not None and match(v) is None,
            f"not matching {spec.pattern.pattern if spec.pattern else ''}",
        ),
    ]
    for breaks, what in rules:
        rows = [i for i, v in enumerate(values) if breaks(v)]
        if rows:
            return (
                f"input {spec.name!r}: {len(rows)} element(s) {what}; the first is index "
                f"{rows[0]}: {values[rows[0]][:80]!r}"
            )
    return None


@pytest.mark.parametrize(
    "name", sorted(n for n, s in SPECS.items() if s.kind in ("string", "integer_or_string"))
)
def test_a_long_text_column_is_refused_naming_its_rows_as_a_row_by_row_check(name: str) -> None:
    spec, rng = SPECS[name], random.Random(name)
    texts = [t for t in TEXTS if t]
    refused = 0
    for _ in range(300):
        # Long columns of a few distinct values: mostly valid ones, now and then a bad one.
        values = [rng.choice(texts[:4]) for _ in range(rng.randint(SMALL_COLUMN + 1, 60))]
        for _ in range(rng.randint(0, 3)):
            values[rng.randrange(len(values))] = rng.choice(TEXTS)
        expected = _first_text_refusal(spec, values)
        if expected is None:
            assert checked_in_numpy(spec, list(values), json_data=False) is not None
            continue
        refused += 1
        with pytest.raises(InferenceRequestError) as caught:
            checked_in_numpy(spec, list(values), json_data=False)
        assert str(caught.value) == expected
    assert refused > 5  # the check must have been made to refuse
