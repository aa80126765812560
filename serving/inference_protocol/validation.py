"""One input's elements checked against its :class:`InputSpec`, the whole column at once.

JSON ``data`` arrives as a Python list and is converted here (numbers into numpy arrays, text
kept as a list of ``str``); binary data arrives already decoded (``datatypes``). The rules are
the request model's: bounds, allowed values, lengths, patterns, finite numbers.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from serving.inference_protocol.errors import InferenceRequestError
from serving.inference_protocol.inputs import InputSpec

_NUMBER_TYPES = frozenset({int, float})
SMALL_COLUMN = 16
"""Columns of at most this many elements are first checked element by element in Python: for
a few orders numpy's per-call cost (1-5 µs a call, a dozen calls a column) is most of the work.
That check only accepts; a column it doubts goes the numpy way, which names the problem, so
both ways give the same column and the same refusal."""


def check_column(spec: InputSpec, data: Any, count: int, *, json_data: bool = True) -> Any:
    """The column of ``spec``'s input from its ``data`` (``count`` elements; ``json_data``:
    a JSON list, else already decoded from binary): a float64, int64 or bool array, or a list
    of ``str`` (of ``int | str`` for a mixed category)."""
    name = spec.name
    if json_data:
        if not isinstance(data, list):
            raise InferenceRequestError(f"input {name!r}: 'data' must be a list", name)
        if len(data) != count:
            raise InferenceRequestError(
                f"input {name!r}: shape says {count} elements, data holds {len(data)} "
                "(data must be a flat list)",
                name,
            )
    if count <= SMALL_COLUMN and small_column_holds(spec, data, json_data=json_data):
        return _typed(spec, data)
    return checked_in_numpy(spec, data, json_data=json_data)


def checked_in_numpy(spec: InputSpec, data: Any, *, json_data: bool = True) -> Any:
    """:func:`check_column` of a column whose length is checked, whole-column in numpy: the
    path of every column a :func:`small_column_holds` doubts, and of every long one."""
    if json_data:
        data = _from_json(spec, data)
    if spec.kind == "number":
        return _numbers(spec, np.asarray(data, dtype=np.float64))
    if spec.kind == "integer":
        return _integers(spec, np.asarray(data, dtype=np.int64))
    if spec.kind == "boolean":
        return np.asarray(data, dtype=np.bool_)
    return _typed(spec, _texts(spec, data))


def _typed(spec: InputSpec, data: Any) -> Any:
    """The column of valid ``data`` (JSON elements, or decoded binary)."""
    kind = spec.kind
    if kind == "number":
        return np.asarray(data, dtype=np.float64)  # None (JSON null) -> NaN: "not given"
    if kind == "integer":
        return np.asarray(data, dtype=np.int64)
    if kind == "boolean":
        return np.asarray(data, dtype=np.bool_)
    if kind == "integer_or_string":
        return [_integer_or_text(v) for v in data]
    return data


def _integer_or_text(value: str) -> int | str:
    """``value`` as an integer when it is one, else the text itself. ``str.isdigit`` also holds
    for digits ``int`` refuses (superscripts: ``"²"``), so ``int`` decides."""
    if value.lstrip("-").isdigit():
        try:
            return int(value)
        except ValueError:
            return value
    return value


_EXACT_FLOAT_INT = 2**53
"""Integers of smaller magnitude are exact as float64: compared with any bound, Python and
numpy (which compares in float64 against a float bound) agree."""


def small_column_holds(spec: InputSpec, data: Any, *, json_data: bool = True) -> bool:
    """True if every element of ``data`` is of the input's type and within its rules, checked
    in Python (an answer for a few elements at a time); False if any is in doubt (then
    :func:`checked_in_numpy` decides, and names the problem)."""
    kind = spec.kind
    if kind in ("string", "integer_or_string"):
        if json_data and any(type(v) is not str for v in data):
            return False
        return _texts_hold(spec, data)
    if not json_data:
        data = data.tolist()
    if kind == "boolean":
        return all(type(v) is bool for v in data)
    if kind == "integer":
        low, high = spec.minimum, spec.maximum
        return all(
            type(v) is int
            and -_EXACT_FLOAT_INT < v < _EXACT_FLOAT_INT
            and _within(spec, v, low, high)
            for v in data
        ) and (spec.allowed is None or set(data) <= set(spec.allowed))
    # numpy compares float64 values with each bound as float64.
    low, high = _as_float(spec.minimum), _as_float(spec.maximum)
    for v in data:
        if v is None and spec.nullable:
            continue  # null: not given (NaN)
        if type(v) is int and -_EXACT_FLOAT_INT < v < _EXACT_FLOAT_INT:
            v = float(v)
        if type(v) is not float:  # a bool, a string, a huge integer: numpy says what
            return False
        if v != v:
            if not spec.nullable:
                return False
        elif v in (math.inf, -math.inf) or not _within(spec, v, low, high):
            return False
    return True


def _within(spec: InputSpec, value: float, low: float, high: float) -> bool:
    above = value > low if spec.exclusive_minimum else value >= low
    return above and (value < high if spec.exclusive_maximum else value <= high)


def _as_float(bound: float) -> float:
    try:
        return float(bound)
    except OverflowError:  # an integer bound beyond float64: compared exactly
        return bound


def _texts_hold(spec: InputSpec, values: list[str]) -> bool:
    low, high = spec.min_length, spec.max_length
    allowed = spec.allowed
    allowed_texts = None if allowed is None else {str(v) for v in allowed}
    pattern = spec.pattern
    match = None
    if pattern is not None:
        match = pattern.fullmatch if pattern.pattern.startswith("^") else pattern.search
    for v in values:
        if len(v) < low or (high is not None and len(v) > high):
            return False
        if allowed_texts is not None and v not in allowed_texts:
            return False
        if match is not None and match(v) is None:
            return False
    return True


def _from_json(spec: InputSpec, data: list[Any]) -> Any:
    name, kind = spec.name, spec.kind
    if kind in ("string", "integer_or_string"):
        if set(map(type, data)) - {str}:
            raise InferenceRequestError(f"input {name!r}: BYTES data must be strings", name)
        return data
    types = set(map(type, data))
    if kind == "boolean":
        if types - {bool}:
            raise InferenceRequestError(f"input {name!r}: BOOL data must be true/false", name)
        return data
    if kind == "integer":
        if types - {int}:
            raise InferenceRequestError(f"input {name!r}: INT64 data must be integers", name)
        try:
            return np.array(data, dtype=np.int64)
        except OverflowError:
            raise InferenceRequestError(
                f"input {name!r}: an integer is out of range", name
            ) from None
    allowed = _NUMBER_TYPES | ({type(None)} if spec.nullable else set())
    if types - allowed:
        nulls = " (or null: not given)" if spec.nullable else ""
        raise InferenceRequestError(f"input {name!r}: FP64 data must be numbers{nulls}", name)
    try:
        return np.array(data, dtype=np.float64)  # None -> NaN: "not given"
    except OverflowError:
        raise InferenceRequestError(f"input {name!r}: a number is out of range", name) from None


def _refuse(spec: InputSpec, bad: np.ndarray, values: Any, what: str) -> None:
    """Raise naming the input, how many elements are ``what`` and the first of them."""
    if not bad.any():
        return
    index = int(np.flatnonzero(bad)[0])
    value = values[index]
    shown = value.item() if isinstance(value, np.generic) else value
    raise InferenceRequestError(
        f"input {spec.name!r}: {int(bad.sum())} element(s) {what}; the first is index {index}: "
        f"{str(shown)[:80]!r}",
        spec.name,
    )


def _bounds_text(spec: InputSpec) -> str:
    low = f"{'>' if spec.exclusive_minimum else '>='} {spec.minimum}"
    high = f"{'<' if spec.exclusive_maximum else '<='} {spec.maximum}"
    return f"outside {low} and {high}"


def _out_of_bounds(spec: InputSpec, values: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):  # NaN (not given) compares False: not out of bounds
        low = values <= spec.minimum if spec.exclusive_minimum else values < spec.minimum
        high = values >= spec.maximum if spec.exclusive_maximum else values > spec.maximum
    return low | high


def _numbers(spec: InputSpec, values: np.ndarray) -> np.ndarray:
    if spec.nullable:
        _refuse(spec, np.isinf(values), values, "infinite")
    else:
        _refuse(spec, ~np.isfinite(values), values, "not finite (NaN or infinite)")
    _refuse(spec, _out_of_bounds(spec, values), values, _bounds_text(spec))
    return values


def _integers(spec: InputSpec, values: np.ndarray) -> np.ndarray:
    if spec.allowed is not None:
        allowed = np.array(spec.allowed, dtype=np.int64)
        _refuse(spec, ~np.isin(values, allowed), values, f"not one of {list(spec.allowed)}")
    _refuse(spec, _out_of_bounds(spec, values), values, _bounds_text(spec))
    return values


def _texts(spec: InputSpec, values: list[str]) -> list[str]:
    # Every rule is a property of the value: each is asked once per distinct value (a 10,000-
    # row column of ids holds a few hundred), and only a refusal goes back to the rows.
    distinct = set(values)
    if spec.max_length is not None:
        high = spec.max_length
        too_long = {v for v in distinct if len(v) > high}
        _refuse_texts(spec, too_long, values, f"longer than {high} characters")
    if spec.min_length > 0:
        low = spec.min_length
        _refuse_texts(spec, {v for v in distinct if len(v) < low}, values, f"shorter than {low}")
    if spec.allowed is not None:
        allowed = {str(v) for v in spec.allowed}
        _refuse_texts(spec, distinct - allowed, values, f"not one of {list(spec.allowed)}")
    pattern = spec.pattern
    if pattern is not None:
        match = pattern.fullmatch if pattern.pattern.startswith("^") else pattern.search
        failing = {v for v in distinct if match(v) is None}
        _refuse_texts(spec, failing, values, f"not matching {pattern.pattern}")
    return values


def _refuse_texts(spec: InputSpec, failing: set[str], values: list[str], what: str) -> None:
    """:func:`_refuse` the rows holding one of the ``failing`` values, if any."""
    if failing:
        bad = np.fromiter((v in failing for v in values), dtype=bool, count=len(values))
        _refuse(spec, bad, values, what)
