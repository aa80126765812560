"""Infer requests decode straight into columns, JSON and binary alike, and every invalid one
is refused with a message naming the input -- before anything is allocated for it."""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from serving.inference_protocol import InferenceRequestError
from serving.inference_protocol.requests import decode_infer_request
from serving.inference_protocol.responses import OUTPUT_NAMES
from tests.models.contract.mixed_contract import MIXED
from tests.serving.inference_protocol.protocol_bodies import (
    DEFAULT_SPECS,
    MAX_ROWS,
    binary_body,
    default_tensors,
    json_body,
    specs_of,
    tensor,
)


def _decode(body: bytes, header: str | None = None, specs: Any = DEFAULT_SPECS) -> Any:
    return decode_infer_request(body, header, specs, OUTPUT_NAMES, MAX_ROWS)


def test_json_and_binary_decode_to_the_same_columns() -> None:
    tensors = default_tensors()
    tensors[0]["data"] = ["r_1", "r_22", "r_333"]  # ids of different lengths
    tensors.append(tensor("driver_avg_delivery_time", "FP64", [31.0, None, 12.0]))
    from_json = _decode(json_body(tensors), None)
    body, header = binary_body(
        [{**t, "data": [np.nan if v is None else v for v in t["data"]]} for t in tensors]
    )
    from_binary = _decode(body, header)
    assert from_json.orders.rows == from_binary.orders.rows == 3
    for name, column in from_json.orders.columns.items():
        other = from_binary.orders.columns[name]
        if isinstance(column, list):
            assert column == other, name
        else:
            np.testing.assert_array_equal(column, other, err_msg=name)
    assert isinstance(from_binary.orders.columns["distance_km"], np.ndarray)
    assert np.isnan(from_json.orders.columns["driver_avg_delivery_time"][1])  # not given


def test_outputs_are_all_unless_chosen_and_binary_as_asked() -> None:
    every = _decode(json_body(default_tensors(), parameters={"binary_data_output": True}))
    assert [o.name for o in every.outputs] == list(OUTPUT_NAMES)
    assert all(o.binary for o in every.outputs)
    chosen = _decode(
        json_body(
            default_tensors(),
            id="abc",
            outputs=[{"name": OUTPUT_NAMES[-1], "parameters": {"binary_data": True}}],
        )
    )
    assert chosen.request_id == "abc"
    assert [(o.name, o.binary) for o in chosen.outputs] == [(OUTPUT_NAMES[-1], True)]


def _with(change: Callable[[list[dict[str, Any]]], None]) -> bytes:
    tensors = default_tensors()
    change(tensors)
    return json_body(tensors)


def _set(name: str, **fields: Any) -> Callable[[list[dict[str, Any]]], None]:
    def change(tensors: list[dict[str, Any]]) -> None:
        for t in tensors:
            if t["name"] == name:
                t.update(fields)

    return change


INVALID_JSON: dict[str, tuple[bytes, str]] = {
    "unknown input": (
        _with(lambda ts: ts.append(tensor("colour", "BYTES", ["x"] * 3))),
        "'colour'",
    ),
    "twice": (_with(lambda ts: ts.append(dict(ts[2]))), "'distance_km' is given twice"),
    "datatype": (_with(_set("distance_km", datatype="FP32")), "'distance_km': datatype FP32"),
    "shape vs data": (_with(_set("distance_km", shape=[2])), "'distance_km'"),
    "lengths differ": (
        _with(_set("order_value", shape=[2], data=[1.0, 2.0])),
        "input 'order_value' has 2 elements",
    ),
    "missing": (_with(lambda ts: ts.pop(4)), "input 'order_value' is required"),
    "out of bounds": (
        _with(_set("distance_km", data=[1.0, 99.0, 2.0])),
        "'distance_km': 1 element",
    ),
    "bad id": (_with(_set("driver_id", data=["d 1", "d_2", "d_3"])), "'driver_id'"),
    "id too long": (_with(_set("driver_id", data=["d" * 65] * 3)), "'driver_id'"),
    "string for number": (_with(_set("order_value", data=["1", 2, 3])), "'order_value'"),
    "bool for number": (_with(_set("order_value", data=[True, 2, 3])), "'order_value'"),
    "number for id": (_with(_set("driver_id", data=[1, 2, 3])), "'driver_id'"),
    "nested data": (
        _with(_set("distance_km", data=[[1.0], [2.0], [3.0]])),
        "'distance_km'",
    ),
    "override infinite": (
        _with(lambda ts: ts.append(tensor("driver_avg_delivery_time", "FP64", [1e400] * 3))),
        "'driver_avg_delivery_time'",
    ),
    "override out of bounds": (
        _with(lambda ts: ts.append(tensor("driver_avg_delivery_time", "FP64", [0, 1, 2]))),
        "'driver_avg_delivery_time'",
    ),
    "too many rows": (_with(_set("distance_km", shape=[10**9])), "1 to 1000 orders"),
    "no rows": (_with(_set("distance_km", shape=[0], data=[])), "'distance_km'"),
    "bad shape": (_with(_set("distance_km", shape=[3, 2])), "'distance_km': shape"),
    "data not a list": (
        _with(_set("distance_km", data=5.0)),
        "'distance_km': 'data' must be a list",
    ),
    "unknown output": (json_body(default_tensors(), outputs=[{"name": "eta"}]), "'eta'"),
    "not json": (b'{"inputs": [', "not valid JSON"),
    "not an object": (b"[1, 2]", "JSON object"),
    "no inputs": (b'{"inputs": []}', "'inputs'"),
}


@pytest.mark.parametrize("body, named", INVALID_JSON.values(), ids=INVALID_JSON)
def test_every_invalid_json_request_is_refused_naming_the_problem(body: bytes, named: str) -> None:
    with pytest.raises(InferenceRequestError, match=named.replace("[", r"\[")):
        _decode(body)


def test_nan_is_refused_where_it_cannot_mean_not_given() -> None:
    body, header = binary_body(_with_data("distance_km", [1.0, float("nan"), 2.0]))
    with pytest.raises(InferenceRequestError, match=r"'distance_km': 1 element.*not finite"):
        _decode(body, header)


def _with_data(name: str, data: list[Any]) -> list[dict[str, Any]]:
    tensors = default_tensors()
    _set(name, data=data)(tensors)
    return tensors


def _binary_with(change: Callable[[dict[str, Any], bytearray], str]) -> tuple[bytes, str]:
    body, header = binary_body(default_tensors())
    length = int(header)
    document = json.loads(body[:length])
    rest = bytearray(body[length:])
    header = change(document, rest) or header
    head = json.dumps(document).encode()
    return head + bytes(rest), str(len(head)) if header != "keep" else header


def _size(index: int, size: int) -> Callable[[dict[str, Any], bytearray], str]:
    def change(document: dict[str, Any], _: bytearray) -> str:
        document["inputs"][index]["parameters"]["binary_data_size"] = size
        return ""

    return change


INVALID_BINARY: dict[str, tuple[Callable[[dict[str, Any], bytearray], str], str]] = {
    "size past the body": (_size(2, 2**40), "'distance_km': binary_data_size"),
    "size not the elements": (_size(2, 16), "'distance_km'"),
    "bytes left over": (lambda d, rest: rest.extend(b"xx") or "", "belong to no input"),
    "bad length prefix": (
        lambda d, rest: rest.__setitem__(slice(0, 4), b"\xff\xff\xff\x7f") or "",
        "'restaurant_id'",
    ),
    "not utf-8": (
        lambda d, rest: rest.__setitem__(slice(4, 5), b"\xff") or "",
        "'restaurant_id'",
    ),
    "bool not 0/1": (
        lambda d, rest: rest.__setitem__(slice(-3 * 8 - 3, -3 * 8 - 2), b"\x07") or "",
        "'is_peak_hour'",
    ),
    "data and binary": (
        lambda d, rest: d["inputs"][0].__setitem__("data", ["r"] * 3) or "",
        "'restaurant_id' has both",
    ),
}


@pytest.mark.parametrize("change, named", INVALID_BINARY.values(), ids=INVALID_BINARY)
def test_every_invalid_binary_request_is_refused_naming_the_problem(
    change: Callable[[dict[str, Any], bytearray], str], named: str
) -> None:
    body, header = _binary_with(change)
    with pytest.raises(InferenceRequestError, match=named) as refused:
        _decode(body, header)
    if "'" in named:
        assert refused.value.input_name == named.split("'")[1]


# "²": str.isdigit holds, int() refuses (a Latin-1 header byte; it was a ValueError, a 500).
@pytest.mark.parametrize("header", ["-1", "abc", "99999999", "1" * 40, "²", "1²"])
def test_a_header_length_outside_the_body_is_refused(header: str) -> None:
    body, _ = binary_body(default_tensors())
    with pytest.raises(InferenceRequestError, match="Inference-Header-Content-Length"):
        _decode(body, header)


def test_a_flood_claim_is_refused_before_anything_is_allocated() -> None:
    # Millions of rows claimed, and a huge binary size: both refused from the header alone.
    millions = {**tensor("distance_km", "FP64", [1.0]), "shape": [50_000_000]}
    claims = [(json_body([millions]), None), _binary_with(_size(2, 2**40))]
    for body, header in claims:
        tracemalloc.start()
        try:
            with pytest.raises(InferenceRequestError):
                _decode(body, header)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < 100_000, peak


def test_a_flood_of_unknown_keys_is_ignored_not_answered_key_by_key() -> None:
    # The body guard does not parse v2 bodies for their shape: the decoder reads only the keys
    # it knows, so 20,000 unknown ones cost their parse and nothing per key.
    flood = {f"k{i}": i for i in range(20_000)}
    tensors = default_tensors()
    expected = _decode(json_body(tensors)).orders.columns
    tensors[0] |= flood
    tensors[1]["parameters"] = flood
    decoded = _decode(json_body(tensors, **flood))
    assert decoded.orders.columns.keys() == expected.keys()
    for name, column in expected.items():
        assert np.asarray(decoded.orders.columns[name]).tolist() == np.asarray(column).tolist()
    with pytest.raises(InferenceRequestError) as refused:  # an error says one thing, briefly
        _decode(json_body([*tensors[:4], {**flood, "name": "order_value"}]))
    assert len(str(refused.value)) < 200


def test_inputs_and_rules_follow_another_contract() -> None:
    specs = specs_of(MIXED)
    by_name = {s.name: s for s in specs}
    assert [s.name for s in specs] == [*MIXED.fields, *MIXED.entity_features]
    assert (by_name["city_tier"].datatype, by_name["city_tier"].allowed) == ("INT64", (1, 2, 3))
    assert by_name["weather"].datatype == "BYTES" and by_name["festival"].datatype == "BOOL"
    assert not by_name["rating"].required and by_name["rating"].default == 4.0
    order = MIXED.example_order()
    tensors = [tensor(s.name, s.datatype, [order[s.name]] * 2) for s in specs if s.name in order]
    decoded = _decode(json_body(tensors), None, specs)
    assert decoded.orders.columns["weather"] == [order["weather"]] * 2
    _set("weather", data=["snow", "rain"])(tensors)
    with pytest.raises(InferenceRequestError, match=r"'weather': 1 element.*not one of"):
        _decode(json_body(tensors), None, specs)
    _set("weather", data=["rain", "rain"])(tensors)
    _set("city_tier", data=[1, 7])(tensors)
    with pytest.raises(InferenceRequestError, match="'city_tier'"):
        _decode(json_body(tensors), None, specs)
