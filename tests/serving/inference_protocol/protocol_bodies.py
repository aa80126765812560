"""Infer request bodies for the protocol's unit tests, JSON or with binary tensors, built by
hand from the wire format (not with the code under test's encoder)."""

from __future__ import annotations

import json
import struct
from typing import Any

import numpy as np

from models.contract import FeatureContract, default_contract
from serving.inference_protocol.inputs import InputSpec, input_specs
from serving.schema import order_model

DEFAULT_SPECS = input_specs(order_model(default_contract()).model_json_schema())
MAX_ROWS = 1000


def specs_of(contract: FeatureContract) -> tuple[InputSpec, ...]:
    """The inputs of the API serving ``contract``."""
    return input_specs(order_model(contract).model_json_schema())


def tensor(name: str, datatype: str, data: list[Any]) -> dict[str, Any]:
    """A JSON input tensor of shape [len(data)]."""
    return {"name": name, "datatype": datatype, "shape": [len(data)], "data": data}


def default_tensors(rows: int = 3) -> list[dict[str, Any]]:
    """A valid request's inputs under the default contract (its example order, repeated)."""
    order = default_contract().example_order()
    by_name = {s.name: s for s in DEFAULT_SPECS}
    tensors = []
    for name, value in order.items():
        datatype = by_name[name].datatype
        value = bool(value) if datatype == "BOOL" else value
        tensors.append(tensor(name, datatype, [value] * rows))
    return tensors


def raw(datatype: str, data: list[Any]) -> bytes:
    """The binary extension's bytes of one tensor (Triton: little-endian; BYTES prefixed)."""
    if datatype == "BYTES":
        return b"".join(struct.pack("<I", len(v.encode())) + v.encode() for v in data)
    dtype = {"FP64": "<f8", "INT64": "<i8", "BOOL": "?"}[datatype]
    return np.array(data, dtype=dtype).tobytes()


def binary_body(tensors: list[dict[str, Any]], **request: Any) -> tuple[bytes, str]:
    """(body, Inference-Header-Content-Length) with every tensor's data as binary."""
    chunks, inputs = [], []
    for t in tensors:
        chunk = raw(t["datatype"], t["data"])
        chunks.append(chunk)
        described = {k: v for k, v in t.items() if k != "data"}
        inputs.append({**described, "parameters": {"binary_data_size": len(chunk)}})
    header = json.dumps({**request, "inputs": inputs}).encode()
    return header + b"".join(chunks), str(len(header))


def json_body(tensors: list[dict[str, Any]], **request: Any) -> bytes:
    """The JSON request of these tensors."""
    return json.dumps({**request, "inputs": tensors}).encode()
