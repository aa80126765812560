"""The protocol's documents -- requests, answers (JSON and binary), metadata, errors -- are
valid against the protocol's own schema, and binary answers carry what the JSON would."""

from __future__ import annotations

import copy
import json
import struct
from typing import Any

import jsonschema
import numpy as np
import pytest

from models.contract import default_contract
from prediction_log import PredictionIds, new_block_key
from serving.inference_protocol import InferenceRequestError
from serving.inference_protocol.metadata import ServedModel, UnknownModel, server_metadata
from serving.inference_protocol.requests import RequestedOutput
from serving.inference_protocol.responses import (
    OUTPUT_NAMES,
    answer_values,
    encode_infer_response,
)
from tests.models.contract.mixed_contract import MIXED
from tests.serving.inference_protocol.protocol_bodies import (
    binary_body,
    default_tensors,
    json_body,
    specs_of,
)

# The Open Inference Protocol's REST schemas, transcribed (components only) from KServe's
# OpenAPI document of the protocol:
# https://github.com/kserve/kserve/blob/master/docs/predict-api/v2/rest_predict_v2.yaml
# (read at commit 2159c3fcccd810e3f73c6cd4d26146fc8685deb4).
_TENSOR_SHAPE = {"type": "array", "items": {"type": "integer"}}
OIP_SCHEMA: dict[str, Any] = {
    "metadata_server_response": {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "version": {"type": "string"},
            "extensions": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["name", "version", "extensions"],
    },
    "metadata_model_response": {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "versions": {"type": "array", "items": {"type": "string"}},
            "platform": {"type": "string"},
            "inputs": {"type": "array", "items": {"$ref": "#/$defs/metadata_tensor"}},
            "outputs": {"type": "array", "items": {"$ref": "#/$defs/metadata_tensor"}},
        },
        "required": ["name", "platform"],
    },
    "metadata_tensor": {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "datatype": {"type": "string"},
            "shape": _TENSOR_SHAPE,
        },
        "required": ["name", "datatype", "shape"],
    },
    "inference_request": {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "parameters": {"$ref": "#/$defs/parameters"},
            "inputs": {"type": "array", "items": {"$ref": "#/$defs/request_input"}},
            "outputs": {"type": "array", "items": {"$ref": "#/$defs/request_output"}},
        },
        "required": ["inputs"],
    },
    "parameters": {"type": "object"},
    "request_input": {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "shape": _TENSOR_SHAPE,
            "datatype": {"type": "string"},
            "parameters": {"$ref": "#/$defs/parameters"},
            "data": {"$ref": "#/$defs/tensor_data"},
        },
        "required": ["name", "shape", "datatype", "data"],
    },
    "tensor_data": {
        "type": "array",
        "items": {
            "anyOf": [
                {"$ref": "#/$defs/tensor_data"},
                {"type": "number"},
                {"type": "string"},
                {"type": "boolean"},
            ]
        },
    },
    "request_output": {
        "type": "object",
        "properties": {"name": {"type": "string"}, "parameters": {"$ref": "#/$defs/parameters"}},
        "required": ["name"],
    },
    "response_output": {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "shape": _TENSOR_SHAPE,
            "datatype": {"type": "string"},
            "parameters": {"$ref": "#/$defs/parameters"},
            "data": {"$ref": "#/$defs/tensor_data"},
        },
        "required": ["name", "shape", "datatype", "data"],
    },
    "inference_response": {
        "type": "object",
        "properties": {
            "model_name": {"type": "string"},
            "model_version": {"type": "string"},
            "id": {"type": "string"},
            "parameters": {"$ref": "#/$defs/parameters"},
            "outputs": {"type": "array", "items": {"$ref": "#/$defs/response_output"}},
        },
        "required": ["model_name", "outputs"],
    },
    "inference_error_response": {
        "type": "object",
        "properties": {"error": {"type": "string"}},
        "required": ["error"],
    },
}


def _binary_extension_schema() -> dict[str, Any]:
    # The binary tensor data extension (Triton's extension_binary_data.md): a tensor whose
    # parameters carry binary_data_size has no "data"; the schema is otherwise the same.
    defs = copy.deepcopy(OIP_SCHEMA)
    for name in ("request_input", "response_output"):
        defs[name]["required"] = ["name", "shape", "datatype"]
        defs[name]["properties"]["parameters"] = {
            "type": "object",
            "properties": {"binary_data_size": {"type": "integer", "minimum": 0}},
            "required": ["binary_data_size"],
        }
    return defs


def _validate(document: Any, name: str, defs: dict[str, Any] = OIP_SCHEMA) -> None:
    jsonschema.validate(document, {"$defs": defs, "$ref": f"#/$defs/{name}"})


def test_the_schema_catches_an_invalid_document() -> None:
    with pytest.raises(jsonschema.ValidationError):
        _validate(
            {"inputs": [{"name": "x", "shape": [1], "datatype": "FP64"}]}, "inference_request"
        )


def test_requests_as_clients_send_them_are_valid() -> None:
    _validate(json.loads(json_body(default_tensors(), id="1")), "inference_request")
    body, header = binary_body(default_tensors())
    _validate(json.loads(body[: int(header)]), "inference_request", _binary_extension_schema())


def _answer(binary: bool) -> Any:
    outputs = [RequestedOutput(name, binary) for name in OUTPUT_NAMES]
    values = {
        OUTPUT_NAMES[0]: np.array([25.5, 31.25]),
        OUTPUT_NAMES[1]: np.array([17.0, 20.0]),
        OUTPUT_NAMES[2]: np.array([34.0, 45.5]),
        OUTPUT_NAMES[3]: ["9b1d0a4e-0000-4000-8000-000000000001", "id-2"],
    }
    return encode_infer_response("delivery_eta", "v1abc", "req-7", outputs, values), values


def test_answers_are_valid_and_binary_carries_the_same_values() -> None:
    as_json, values = _answer(binary=False)
    assert as_json.header_length is None and as_json.media_type == "application/json"
    document = json.loads(as_json.body)
    _validate(document, "inference_response")
    assert (document["model_name"], document["model_version"], document["id"]) == (
        "delivery_eta",
        "v1abc",
        "req-7",
    )
    data = {o["name"]: o["data"] for o in document["outputs"]}
    as_binary, _ = _answer(binary=True)
    header = json.loads(as_binary.body[: as_binary.header_length])
    _validate(header, "inference_response", _binary_extension_schema())
    offset = as_binary.header_length
    for output in header["outputs"]:
        size = output["parameters"]["binary_data_size"]
        chunk = as_binary.body[offset : offset + size]
        offset += size
        if output["datatype"] == "FP64":
            assert np.frombuffer(chunk, "<f8").tolist() == data[output["name"]]
        else:  # BYTES: 4-byte little-endian length, then the bytes, per element
            ids, at = [], 0
            while at < len(chunk):
                (length,) = struct.unpack_from("<I", chunk, at)
                ids.append(chunk[at + 4 : at + 4 + length].decode())
                at += 4 + length
            assert ids == data[output["name"]] == values[output["name"]]
    assert offset == len(as_binary.body)


@pytest.mark.parametrize("contract", [default_contract(), MIXED], ids=["default", "mixed"])
def test_metadata_is_valid_and_follows_the_contract(contract: Any) -> None:
    model = ServedModel.of_tag("delivery_eta:abc123", "scikit-learn", specs_of(contract))
    document = model.metadata()
    _validate(document, "metadata_model_response")
    assert document["versions"] == ["abc123"]
    assert [i["name"] for i in document["inputs"]] == [*contract.fields, *contract.entity_features]
    assert all(i["shape"] == [-1] for i in document["inputs"] + document["outputs"])
    _validate(server_metadata("delivery_eta", "0.1.0"), "metadata_server_response")


def test_another_model_or_version_is_unknown_and_errors_are_protocol_bodies() -> None:
    model = ServedModel.of_tag("delivery_eta:abc123", "scikit-learn", specs_of(default_contract()))
    model.check("delivery_eta", None)
    model.check("delivery_eta", "abc123")
    for name, version in (("other", None), ("delivery_eta", "old")):
        with pytest.raises(UnknownModel, match="not served here") as unknown:
            model.check(name, version)
        _validate({"error": str(unknown.value)}, "inference_error_response")
    _validate(
        {"error": str(InferenceRequestError("input 'x': bad", "x"))}, "inference_error_response"
    )


def test_answer_values_carry_the_same_ids_as_json_and_as_binary_bytes() -> None:
    ids = PredictionIds(new_block_key(3), 3)
    outputs = np.array([[25.5, 17.0, 34.0], [31.25, 20.0, 45.5], [12.0, 9.0, 16.0]])
    as_json = answer_values(outputs, ids, [RequestedOutput(name, False) for name in OUTPUT_NAMES])
    binary = [RequestedOutput(name, name == OUTPUT_NAMES[3]) for name in OUTPUT_NAMES]
    as_bytes = answer_values(outputs, ids, binary)
    assert as_json[OUTPUT_NAMES[3]] == list(ids)  # str per id for JSON
    table = as_bytes[OUTPUT_NAMES[3]]  # bytes per id, no str, for binary data
    assert [row.tobytes().decode() for row in table] == list(ids)
    for column, name in enumerate(OUTPUT_NAMES[:3]):
        assert as_json[name].tolist() == as_bytes[name].tolist() == outputs[:, column].tolist()
    encoded = encode_infer_response("m", "1", None, binary, as_bytes)
    assert encoded.body[encoded.header_length :].count(ids[0].encode()) == 1
