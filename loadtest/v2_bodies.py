"""Open Inference Protocol (v2) infer bodies for the benchmark, built from the served contract.

The orders are ``models.contract.bodies``'s seeded random orders, so a v2 call and a
``/v1/predict/batch`` call of the same seed carry the same orders. One input per request field,
named and typed from the request model's JSON schema by the service's own mapping
(``serving.inference_protocol.inputs.input_specs``); a nullable number (an entity aggregate's
override) is ``FP64`` with NaN for the orders that leave it out. Nothing here names
a field: another contract gives other inputs.

Two encodings of the same request: JSON tensor data (``{"inputs": [{"name", "datatype",
"shape": [n], "data": [...]}], "outputs": [...]}``), and Triton's binary tensor data extension:
the JSON header without ``data``, each input's ``parameters.binary_data_size``, then the raw
buffers in input order (little-endian numbers, BOOL one byte, BYTES elements a 4-byte
little-endian length then the bytes); the header's length goes in the
``Inference-Header-Content-Length`` request header, and ``binary_data_output`` asks for the
outputs as binary data too.

The bodies files: JSON bodies one per line (``predict.lua`` cycles through them), the same
orders as ``/v1/predict/batch`` bodies too; binary bodies as records
``<header length> <body length>\\n<body>`` (``v2_binary.lua``).
"""

from __future__ import annotations

import json
import math
import random
import struct
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from models.contract import FeatureContract
from models.contract.bodies import OrderGenerator
from models.contract.request import order_model
from serving.inference_protocol.inputs import InputSpec, input_specs

DTYPES = {"FP64": np.dtype("<f8"), "INT64": np.dtype("<i8"), "BOOL": np.dtype("?")}
"""numpy dtypes of the fixed-size datatypes the request fields use, as the wire holds them."""
HEADER_LENGTH_HEADER = "Inference-Header-Content-Length"
"""The request header that carries the JSON header's length in a binary body."""


InputTensor = InputSpec
"""One request field as a protocol input: the service's own mapping
(``serving.inference_protocol.inputs``), so the bench sends what the metadata publishes."""


def input_tensors(request_schema: Mapping[str, Any]) -> tuple[InputSpec, ...]:
    """One input per property of a request model's JSON schema, in its order, as the
    service's model metadata lists them."""
    return input_specs(request_schema)


def columns(
    orders: Sequence[Mapping[str, Any]], tensors: Sequence[InputTensor]
) -> list[tuple[InputTensor, list[Any]]]:
    """The orders as one column per input (request-field order). An input no order carries is
    left out (the service applies its default); a field some orders leave out takes its
    default there, or NaN for a nullable number; a required one missing raises ``ValueError``."""
    out: list[tuple[InputTensor, list[Any]]] = []
    for tensor in tensors:
        if not any(tensor.name in order for order in orders):
            continue
        values: list[Any] = []
        for index, order in enumerate(orders):
            value = order.get(tensor.name, tensor.default)
            if value is None:
                if not tensor.nullable:
                    raise ValueError(f"order {index} has no {tensor.name!r} and it has no default")
                value = math.nan
            values.append(_element(tensor.datatype, value))
        out.append((tensor, values))
    return out


def _element(datatype: str, value: Any) -> Any:
    if datatype == "BOOL":
        return bool(value)
    if datatype == "BYTES":
        return str(value)
    if datatype == "INT64":
        return int(value)
    return float(value)


def _outputs(names: Sequence[str], binary: bool) -> list[dict[str, Any]]:
    if binary:
        return [{"name": name, "parameters": {"binary_data": True}} for name in names]
    return [{"name": name} for name in names]


def json_body(
    orders: Sequence[Mapping[str, Any]],
    tensors: Sequence[InputTensor],
    output_names: Sequence[str] = (),
) -> bytes:
    """The infer request with JSON tensor data. NaN (a nullable input some orders leave out)
    has no JSON form: raises ``ValueError`` -- send those orders as binary."""
    inputs = [
        {"name": t.name, "datatype": t.datatype, "shape": [len(values)], "data": values}
        for t, values in columns(orders, tensors)
    ]
    document: dict[str, Any] = {"inputs": inputs}
    if output_names:
        document["outputs"] = _outputs(output_names, binary=False)
    return json.dumps(document, separators=(",", ":"), allow_nan=False).encode()


def raw_tensor(datatype: str, values: Sequence[Any]) -> bytes:
    """``values`` as the binary extension carries a tensor of ``datatype``."""
    if datatype == "BYTES":
        parts = []
        for value in values:
            encoded = str(value).encode()
            parts.append(struct.pack("<I", len(encoded)) + encoded)
        return b"".join(parts)
    return np.asarray(values, dtype=DTYPES[datatype]).tobytes()


def binary_body(
    orders: Sequence[Mapping[str, Any]],
    tensors: Sequence[InputTensor],
    output_names: Sequence[str] = (),
) -> tuple[bytes, int]:
    """(body, header length) of the infer request with binary tensor data, outputs requested
    as binary data too (``binary_data_output``)."""
    inputs, buffers = [], []
    for tensor, values in columns(orders, tensors):
        raw = raw_tensor(tensor.datatype, values)
        inputs.append(
            {
                "name": tensor.name,
                "datatype": tensor.datatype,
                "shape": [len(values)],
                "parameters": {"binary_data_size": len(raw)},
            }
        )
        buffers.append(raw)
    document: dict[str, Any] = {"inputs": inputs, "parameters": {"binary_data_output": True}}
    if output_names:
        document["outputs"] = _outputs(output_names, binary=True)
    header = json.dumps(document, separators=(",", ":")).encode()
    return header + b"".join(buffers), len(header)


def decode_binary_body(body: bytes, header_length: int) -> dict[str, list[Any]]:
    """The columns of a :func:`binary_body` (input name -> elements): its reader, for tests and
    for checking a bodies file."""
    document = json.loads(body[:header_length])
    offset = header_length
    decoded: dict[str, list[Any]] = {}
    for tensor in document["inputs"]:
        size = tensor["parameters"]["binary_data_size"]
        raw = body[offset : offset + size]
        offset += size
        if tensor["datatype"] == "BYTES":
            values, at = [], 0
            while at < len(raw):
                (length,) = struct.unpack_from("<I", raw, at)
                values.append(raw[at + 4 : at + 4 + length].decode())
                at += 4 + length
        else:
            values = np.frombuffer(raw, dtype=DTYPES[tensor["datatype"]]).tolist()
        if len(values) != tensor["shape"][0]:
            raise ValueError(f"input {tensor['name']!r}: {len(values)} elements, shape {tensor}")
        decoded[tensor["name"]] = values
    if offset != len(body):
        raise ValueError(f"{len(body) - offset} bytes after the last input")
    return decoded


def v2_orders(
    contract: FeatureContract,
    rng: random.Random,
    rows: int,
    known_ids: Mapping[str, Sequence[str]] | None = None,
) -> list[dict[str, Any]]:
    """``rows`` seeded random orders as the v2 cells send them: every field the generator
    draws (an optional field it leaves out takes its default), and no per-entity overrides --
    the columnar path's figure is the feature store's path."""
    generator = OrderGenerator(contract, known_ids, override_share=0.0)
    return generator.orders(rng, rows)


def body_records(
    contract: FeatureContract,
    *,
    count: int,
    rows: int,
    seed: int = 0,
    known_ids: Mapping[str, Sequence[str]] | None = None,
    output_names: Sequence[str] = (),
) -> Iterator[tuple[list[dict[str, Any]], bytes, bytes, int]]:
    """``count`` batches of ``rows`` orders: (orders, JSON body, binary body, its header
    length)."""
    tensors = input_tensors(order_model(contract).model_json_schema())
    rng = random.Random(seed)
    for _ in range(count):
        orders = v2_orders(contract, rng, rows, known_ids)
        binary, header_length = binary_body(orders, tensors, output_names)
        yield orders, json_body(orders, tensors, output_names), binary, header_length


def write_v2_bodies(
    out: Path,
    contract: FeatureContract,
    *,
    count: int,
    rows: int,
    seed: int = 0,
    known_ids: Mapping[str, Sequence[str]] | None = None,
    output_names: Sequence[str] = (),
) -> tuple[Path, Path, Path]:
    """Write the same ``count`` batches three ways into ``out``: ``v1-batch-<rows>.jsonl``
    (``{"orders": [...]}`` per line, for ``/v1/predict/batch``), ``v2-json-<rows>.jsonl`` (one
    JSON infer body per line) and ``v2-binary-<rows>.bin`` (records ``<header length> <body
    length>\\n<body>``); returns the three paths in that order."""
    out.mkdir(parents=True, exist_ok=True)
    paths = (
        out / f"v1-batch-{rows}.jsonl",
        out / f"v2-json-{rows}.jsonl",
        out / f"v2-binary-{rows}.bin",
    )
    with paths[0].open("wb") as v1, paths[1].open("wb") as v2_json, paths[2].open("wb") as v2_bin:
        for orders, json_bytes, binary, header_length in body_records(
            contract,
            count=count,
            rows=rows,
            seed=seed,
            known_ids=known_ids,
            output_names=output_names,
        ):
            v1.write(json.dumps({"orders": orders}, separators=(",", ":")).encode() + b"\n")
            v2_json.write(json_bytes + b"\n")
            v2_bin.write(f"{header_length} {len(binary)}\n".encode() + binary)
    return paths


def read_binary_records(path: Path) -> list[tuple[int, bytes]]:
    """The (header length, body) records of a ``v2-binary-<rows>.bin`` file."""
    data = path.read_bytes()
    records, at = [], 0
    while at < len(data):
        end = data.index(b"\n", at)
        header_length, size = (int(x) for x in data[at:end].split())
        records.append((header_length, data[end + 1 : end + 1 + size]))
        at = end + 1 + size
    return records
