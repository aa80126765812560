"""The v2 (Open Inference Protocol) benchmark bodies: one input per request field with the
datatype its JSON schema gives, the binary body decodes back to the orders it was built from,
the JSON body carries the same columns, and v2_binary.lua sends each record with its
Inference-Header-Content-Length (checked against a stand-in that decodes what it receives)."""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from loadtest.v2_bodies import (
    HEADER_LENGTH_HEADER,
    InputTensor,
    binary_body,
    body_records,
    columns,
    decode_binary_body,
    input_tensors,
    json_body,
    read_binary_records,
    write_v2_bodies,
)
from models.contract import default_contract
from models.contract.request import order_model, order_problems
from tests.harness.local_server import ROOT
from tests.models.contract.mixed_contract import MIXED

V2_SCRIPT = ROOT / "loadtest" / "v2_binary.lua"


def _tensors(contract: Any) -> dict[str, InputTensor]:
    return {t.name: t for t in input_tensors(order_model(contract).model_json_schema())}


def test_inputs_follow_the_request_schema() -> None:
    default = _tensors(default_contract())
    assert list(default) == list(order_model(default_contract()).model_json_schema()["properties"])
    kinds = {name: (t.datatype, t.nullable) for name, t in default.items()}
    entity_fields = default_contract().entity_fields
    assert all(kinds[name] == ("BYTES", False) for name in entity_fields)
    overrides = default_contract().entity_features
    assert overrides and all(kinds[name] == ("FP64", True) for name in overrides)
    mixed = {name: t.datatype for name, t in _tensors(MIXED).items()}
    expected = {"entity": "BYTES", "integer": "INT64", "boolean": "BOOL", "number": "FP64"}
    for name, spec in MIXED.fields.items():
        if spec.kind == "category":  # text values -> BYTES, whole numbers -> INT64
            numbers = all(isinstance(v, int) for v in spec.values)
            assert mixed[name] == ("INT64" if numbers else "BYTES"), name
        else:
            assert mixed[name] == expected[spec.kind], name


def _as_sent(tensor: InputTensor, order: dict[str, Any]) -> Any:
    value = order.get(tensor.name, tensor.default)
    if value is None:
        return math.nan
    return {"BOOL": bool, "BYTES": str, "INT64": int, "FP64": float}[tensor.datatype](value)


def _same(a: Any, b: Any) -> bool:
    return (isinstance(a, float) and math.isnan(a) and math.isnan(b)) or a == b


@pytest.mark.parametrize("contract", [default_contract(), MIXED], ids=["default", "mixed"])
def test_the_binary_body_decodes_back_to_its_orders(contract: Any) -> None:
    tensors = _tensors(contract)
    for orders, json_bytes, binary, header_length in body_records(
        contract, count=3, rows=57, seed=5, output_names=("out_a", "out_b")
    ):
        decoded = decode_binary_body(binary, header_length)
        carried = {name for order in orders for name in order}
        assert set(decoded) == carried
        for name, values in decoded.items():
            expected = [_as_sent(tensors[name], order) for order in orders]
            assert len(values) == 57
            assert all(_same(v, e) for v, e in zip(values, expected, strict=True)), name
        header = json.loads(binary[:header_length])
        assert header["parameters"] == {"binary_data_output": True}
        assert header["outputs"] == [
            {"name": n, "parameters": {"binary_data": True}} for n in ("out_a", "out_b")
        ]
        assert all("data" not in t and t["shape"] == [57] for t in header["inputs"])
        document = json.loads(json_bytes)
        assert {t["name"]: t["data"] for t in document["inputs"]} == decoded
        assert [t["datatype"] for t in document["inputs"]] == [
            t["datatype"] for t in header["inputs"]
        ]
        assert document["outputs"] == [{"name": "out_a"}, {"name": "out_b"}]


def test_missing_values_take_defaults_nan_or_are_refused() -> None:
    tensors = list(_tensors(default_contract()).values())
    example = default_contract().example_order()
    override = default_contract().entity_features[0]
    orders = [dict(example), {**example, override: 21.5}]
    by_name = {t.name: values for t, values in columns(orders, tensors)}
    assert math.isnan(by_name[override][0]) and by_name[override][1] == 21.5
    assert default_contract().entity_features[1] not in by_name  # no order carries it
    with pytest.raises(ValueError, match="Out of range float"):
        json_body(orders, tensors)  # NaN: binary only
    body, length = binary_body(orders, tensors)
    assert math.isnan(decode_binary_body(body, length)[override][0])
    required = default_contract().entity_fields[0]
    with pytest.raises(ValueError, match=required):
        columns([example, {k: v for k, v in example.items() if k != required}], tensors)


def test_bytes_elements_are_length_prefixed_little_endian() -> None:
    entity = default_contract().entity_fields[0]
    tensor = _tensors(default_contract())[entity]
    example = default_contract().example_order()
    body, length = binary_body([example], [tensor])
    raw = body[length:]
    value = str(example[entity]).encode()
    assert raw == len(value).to_bytes(4, "little") + value
    assert json.loads(body[:length])["inputs"][0]["parameters"]["binary_data_size"] == len(raw)


@contextlib.contextmanager
def _decoding_stand_in() -> Iterator[tuple[str, list[str], list[int]]]:
    """A loopback stand-in of the v2 infer route: decodes each binary body with its header
    length, records problems and the row counts it decoded."""
    problems: list[str] = []
    rows: list[int] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                decoded = decode_binary_body(body, int(self.headers[HEADER_LENGTH_HEADER]))
                rows.append(len(next(iter(decoded.values()))))
                status = 200
            except (KeyError, TypeError, ValueError) as exc:
                problems.append(repr(exc))
                status = 400
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", problems, rows
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk not installed (make system-deps)")
def test_v2_binary_lua_sends_each_record_with_its_header_length(tmp_path: Path) -> None:
    v1_path, json_path, binary_path = write_v2_bodies(tmp_path, MIXED, count=4, rows=30, seed=1)
    records = read_binary_records(binary_path)
    v1_batches = [json.loads(line)["orders"] for line in v1_path.read_text().splitlines()]
    v2_bodies = [json.loads(line) for line in json_path.read_text().splitlines()]
    assert len(records) == len(v1_batches) == len(v2_bodies) == 4
    for (length, body), orders, document in zip(records, v1_batches, v2_bodies, strict=True):
        assert all(order_problems(MIXED, order) == [] for order in orders)
        decoded = decode_binary_body(body, length)
        assert decoded == {t["name"]: t["data"] for t in document["inputs"]}
        tensors = _tensors(MIXED)
        for name, values in decoded.items():
            assert values == [_as_sent(tensors[name], order) for order in orders]
    with _decoding_stand_in() as (url, problems, rows):
        run = subprocess.run(
            [
                *("wrk", "-t1", "-c2", "-d1s", "-s", str(V2_SCRIPT)),
                *(f"{url}/v2/models/m/infer", "--", str(binary_path)),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert run.returncode == 0, run.stderr
    assert problems == [] and len(rows) > 4 and set(rows) == {30}
    assert "Non-2xx" not in run.stdout


def test_the_seed_decides_the_orders() -> None:
    first = [r[0] for r in body_records(MIXED, count=2, rows=5, seed=9)]
    again = [r[0] for r in body_records(MIXED, count=2, rows=5, seed=9)]
    assert first == again
    assert first != [r[0] for r in body_records(MIXED, count=2, rows=5, seed=10)]
