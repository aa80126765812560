"""One input's elements checked against its :class:`InputSpec`, the whole column at once.

JSON ``data`` arrives as a Python list and is converted here (numbers into numpy arrays, text
kept as a list of ``str``); binary data arrives already decoded (``datatypes``). The rules are
the request model's: bounds, allowed values, lengths, patterns, finite numbers.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from serving.inference_protocol.errors import InferenceRequestError
from serving.inference_protocol.inputs import InputSpec

_NUMBER_TYPES = frozenset({int, float})


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
        data = _from_json(spec, data)
    if spec.kind == "number":
        return _numbers(spec, np.asarray(data, dtype=np.float64))
    if spec.kind == "integer":
        return _integers(spec, np.asarray(data, dtype=np.int64))
    if spec.kind == "boolean":
        return np.asarray(data, dtype=np.bool_)
    texts = _texts(spec, data)
    if spec.kind == "integer_or_string":
        return [int(v) if v.lstrip("-").isdigit() else v for v in texts]
    return texts


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
    lengths = np.fromiter(map(len, values), dtype=np.int64, count=len(values))
    if spec.max_length is not None:
        too_long = lengths > spec.max_length
        _refuse(spec, too_long, values, f"longer than {spec.max_length} characters")
    _refuse(spec, lengths < spec.min_length, values, f"shorter than {spec.min_length}")
    distinct = set(values)  # each rule is asked once per distinct value, not per row
    if spec.allowed is not None:
        allowed = {str(v) for v in spec.allowed}
        if not distinct <= allowed:
            bad = np.fromiter((v not in allowed for v in values), dtype=bool, count=len(values))
            _refuse(spec, bad, values, f"not one of {list(spec.allowed)}")
    pattern = spec.pattern
    if pattern is not None:
        match = pattern.fullmatch if pattern.pattern.startswith("^") else pattern.search
        failing = {v for v in distinct if match(v) is None}
        if failing:
            bad = np.fromiter((v in failing for v in values), dtype=bool, count=len(values))
            _refuse(spec, bad, values, f"not matching {pattern.pattern}")
    return values
