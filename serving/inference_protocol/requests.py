"""Decode an infer request straight into columns, and validate them with numpy.

The body is the request's JSON, or (binary tensor data extension) that JSON's first
``Inference-Header-Content-Length`` bytes followed by each binary input's bytes in the order of
``inputs``, each sized by its ``parameters.binary_data_size``. Every problem raises
:class:`InferenceRequestError` naming the input; sizes are checked before anything is
allocated for them (a body claims at most its own length, a shape at most ``max_rows``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic_core import from_json

from models.features import OrderColumns
from serving.inference_protocol.datatypes import DATATYPES, decode_binary
from serving.inference_protocol.errors import InferenceRequestError
from serving.inference_protocol.inputs import InputSpec
from serving.inference_protocol.validation import check_column

MAX_HEADER_DIGITS = 12


@dataclass(frozen=True)
class RequestedOutput:
    """An output the answer carries, and whether as binary data."""

    name: str
    binary: bool


@dataclass(frozen=True)
class InferRequest:
    """A decoded, valid infer request."""

    request_id: str | None
    orders: OrderColumns
    outputs: tuple[RequestedOutput, ...]


def decode_infer_request(
    body: bytes,
    header_length: str | None,
    specs: Sequence[InputSpec],
    output_names: Sequence[str],
    max_rows: int,
) -> InferRequest:
    """The request in ``body`` (``header_length``: the ``Inference-Header-Content-Length``
    header, None without the binary extension), validated against ``specs``; at most
    ``max_rows`` orders; ``output_names``: the outputs a request may ask for."""
    header, binary = _split(body, header_length)
    try:
        document = from_json(header)
    except ValueError as exc:
        raise InferenceRequestError(f"request is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise InferenceRequestError("request must be a JSON object")
    request_id = document.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise InferenceRequestError("request 'id' must be a string")
    parameters = _parameters(document.get("parameters"), "request")
    binary_output = parameters.get("binary_data_output", False)
    if not isinstance(binary_output, bool):
        raise InferenceRequestError("request parameter 'binary_data_output' must be a boolean")
    orders = _columns(document.get("inputs"), binary, specs, max_rows)
    outputs = _outputs(document.get("outputs"), output_names, binary_output)
    return InferRequest(request_id, orders, outputs)


def _split(body: bytes, header_length: str | None) -> tuple[bytes, memoryview]:
    if header_length is None:
        return body, memoryview(b"")
    text = header_length.strip()
    # isascii: str.isdigit holds for digits int() refuses ("²", a Latin-1 header byte).
    if (
        not (text.isascii() and text.isdigit())
        or len(text) > MAX_HEADER_DIGITS
        or int(text) > len(body)
    ):
        raise InferenceRequestError(
            f"Inference-Header-Content-Length {header_length[:20]!r} is not a length within "
            f"the body's {len(body)} bytes"
        )
    length = int(text)
    return body[:length], memoryview(body)[length:]


def _parameters(value: Any, owner: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InferenceRequestError(f"{owner} 'parameters' must be an object")
    return value


def _columns(
    inputs: Any, binary: memoryview, specs: Sequence[InputSpec], max_rows: int
) -> OrderColumns:
    if not isinstance(inputs, list) or not inputs:
        raise InferenceRequestError("request 'inputs' must be a non-empty list")
    by_name = {spec.name: spec for spec in specs}
    if len(inputs) > len(by_name):
        raise InferenceRequestError(f"{len(inputs)} inputs; the model has {len(by_name)}")
    columns: dict[str, Any] = {}
    rows: int | None = None
    first_name = ""
    offset = 0
    for tensor in inputs:
        name, count, size, data = _tensor(tensor, by_name, columns, max_rows)
        if rows is None:
            rows, first_name = count, name
        elif count != rows:
            raise InferenceRequestError(
                f"input {name!r} has {count} elements, input {first_name!r} {rows}: every input "
                "holds one element per order",
                name,
            )
        spec = by_name[name]
        if size is not None:
            if offset + size > len(binary):
                raise InferenceRequestError(
                    f"input {name!r}: binary_data_size {size} goes past the body's "
                    f"{len(binary)} bytes of binary data",
                    name,
                )
            data = decode_binary(spec.datatype, binary[offset : offset + size], count, name)
            offset += size
        columns[name] = check_column(spec, data, count, json_data=size is None)
    if offset != len(binary):
        raise InferenceRequestError(
            f"{len(binary) - offset} bytes of binary data belong to no input "
            "(binary_data_size values do not add up to the body)"
        )
    missing = [spec.name for spec in specs if spec.required and spec.name not in columns]
    if missing:
        raise InferenceRequestError(f"input {missing[0]!r} is required", missing[0])
    for spec in specs:  # optional inputs left out: the field's default for every order
        if spec.name not in columns and spec.default is not None:
            columns[spec.name] = check_column(spec, [spec.default] * (rows or 0), rows or 0)
    assert rows is not None
    return OrderColumns(rows, columns)


def _tensor(
    tensor: Any, by_name: Mapping[str, InputSpec], seen: Mapping[str, Any], max_rows: int
) -> tuple[str, int, int | None, Any]:
    """(name, element count, binary size or None, JSON data) of one input, checked."""
    if not isinstance(tensor, dict):
        raise InferenceRequestError("each input must be a JSON object")
    name = tensor.get("name")
    if not isinstance(name, str):
        raise InferenceRequestError("an input has no string 'name'")
    spec = by_name.get(name)
    if spec is None:
        shown = name if len(name) <= 64 else name[:64] + "..."
        raise InferenceRequestError(
            f"unknown input {shown!r}; the model's inputs are {sorted(by_name)}"
        )
    if name in seen:
        raise InferenceRequestError(f"input {name!r} is given twice", name)
    datatype = tensor.get("datatype")
    if datatype != spec.datatype:
        known = datatype if datatype in DATATYPES else repr(datatype)[:32]
        raise InferenceRequestError(
            f"input {name!r}: datatype {known}, expected {spec.datatype}", name
        )
    count = _count(tensor.get("shape"), name, max_rows)
    parameters = tensor.get("parameters")
    size = None  # (the owner's name is formatted only for a refusal: this runs per input)
    if parameters is not None:
        size = _parameters(parameters, f"input {name!r}").get("binary_data_size")
    if size is None:
        if "data" not in tensor:
            raise InferenceRequestError(
                f"input {name!r} has neither 'data' nor a binary_data_size", name
            )
        return name, count, None, tensor["data"]
    if type(size) is not int or size < 0:
        raise InferenceRequestError(
            f"input {name!r}: binary_data_size must be a non-negative integer", name
        )
    if "data" in tensor:
        raise InferenceRequestError(f"input {name!r} has both 'data' and binary data", name)
    return name, count, size, None


def _count(shape: Any, name: str, max_rows: int) -> int:
    """Elements of a ``[n]`` (or ``[n, 1]``) shape: one per order, 1 to ``max_rows``."""
    if type(shape) is list and len(shape) == 1 and type(shape[0]) is int:  # [n]: most requests
        count = shape[0]
        if 1 <= count <= max_rows:
            return count
    if (
        not isinstance(shape, list)
        or not 1 <= len(shape) <= 2
        or not all(type(d) is int and d >= 0 for d in shape)
        or (len(shape) == 2 and shape[1] != 1)
    ):
        raise InferenceRequestError(
            f"input {name!r}: shape {str(shape)[:40]} is not [n] (one element per order)", name
        )
    count = int(shape[0])
    if not 1 <= count <= max_rows:
        raise InferenceRequestError(
            f"input {name!r}: shape [{count}]: 1 to {max_rows} orders per request", name
        )
    return count


def _outputs(
    requested: Any, output_names: Sequence[str], binary_output: bool
) -> tuple[RequestedOutput, ...]:
    """The outputs to answer with: those asked for, in that order, else all of them; each in
    binary when its ``binary_data`` parameter says so, else as the request-level
    ``binary_data_output`` says."""
    if requested is None:
        return tuple(RequestedOutput(name, binary_output) for name in output_names)
    if not isinstance(requested, list) or len(requested) > len(output_names):
        raise InferenceRequestError(
            f"request 'outputs' must be a list of at most {len(output_names)} outputs"
        )
    chosen: dict[str, RequestedOutput] = {}
    for output in requested:
        name = output.get("name") if isinstance(output, dict) else None
        if not isinstance(name, str) or name not in output_names:
            shown = str(name)[:64]
            raise InferenceRequestError(
                f"unknown output {shown!r}; the model's outputs are {list(output_names)}"
            )
        if name in chosen:
            raise InferenceRequestError(f"output {name!r} is asked for twice")
        binary = _parameters(output.get("parameters"), f"output {name!r}").get(
            "binary_data", binary_output
        )
        if not isinstance(binary, bool):
            raise InferenceRequestError(f"output {name!r}: binary_data must be a boolean")
        chosen[name] = RequestedOutput(name, binary)
    return tuple(chosen.values())
