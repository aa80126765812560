"""Encode an infer answer: one output per answered value of the ``/v1`` prediction, named as
the :class:`serving.schema.Prediction` fields are -- the prediction, the interval bounds
(``FP64``) and the prediction id (``BYTES``: send it to ``/v1/feedback`` with the actual
value). Each output is JSON ``data`` or, when asked for, binary data after the JSON."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic_core import to_json

from serving.inference_protocol.datatypes import encode_binary
from serving.inference_protocol.requests import RequestedOutput
from serving.schema import Prediction

if TYPE_CHECKING:
    from prediction_log import PredictionIds


@dataclass(frozen=True)
class OutputSpec:
    """One output tensor of every answer (shape ``[-1]``, one element per order)."""

    name: str
    datatype: str


def _prediction_field(name: str) -> str:
    # Fails at import if the /v1 answer renames a field: the two APIs name values alike.
    if name not in Prediction.model_fields:
        raise KeyError(f"{name!r} is not a field of the /v1 Prediction")
    return name


POINT, LOWER, UPPER, PREDICTION_ID = (
    _prediction_field("predicted_delivery_time_min"),
    _prediction_field("confidence_interval_lower"),
    _prediction_field("confidence_interval_upper"),
    _prediction_field("prediction_id"),
)
OUTPUTS: tuple[OutputSpec, ...] = (
    OutputSpec(POINT, "FP64"),
    OutputSpec(LOWER, "FP64"),
    OutputSpec(UPPER, "FP64"),
    OutputSpec(PREDICTION_ID, "BYTES"),
)
OUTPUT_NAMES = tuple(output.name for output in OUTPUTS)
DATATYPE_OF = {output.name: output.datatype for output in OUTPUTS}


@dataclass(frozen=True)
class EncodedResponse:
    """The answer's body, and the ``Inference-Header-Content-Length`` (None: all JSON)."""

    body: bytes
    header_length: int | None

    @property
    def media_type(self) -> str:
        """JSON, or octet-stream once binary data follows the JSON."""
        return "application/json" if self.header_length is None else "application/octet-stream"


def answer_values(
    outputs: np.ndarray, prediction_ids: PredictionIds, requested: Sequence[RequestedOutput]
) -> dict[str, Any]:
    """The values of one answer by output name (for :func:`encode_infer_response`): the columns
    of ``outputs`` (n, 3: point, lower, upper) and the ids -- their ASCII bytes when the ids are
    asked for as binary data, so that no ``str`` is made per id."""
    binary_ids = any(o.binary for o in requested if o.name == PREDICTION_ID)
    return {
        POINT: outputs[:, 0],
        LOWER: outputs[:, 1],
        UPPER: outputs[:, 2],
        PREDICTION_ID: prediction_ids.ascii_table() if binary_ids else prediction_ids.tolist(),
    }


def encode_infer_response(
    model_name: str,
    model_version: str,
    request_id: str | None,
    outputs: Sequence[RequestedOutput],
    values: Mapping[str, Any],
) -> EncodedResponse:
    """The answer carrying ``values`` (output name -> 1-d array or list of str) for the
    requested ``outputs``, in their order."""
    described: list[dict[str, Any]] = []
    binary: list[bytes] = []
    for output in outputs:
        column = values[output.name]
        datatype = DATATYPE_OF[output.name]
        tensor: dict[str, Any] = {
            "name": output.name,
            "datatype": datatype,
            "shape": [len(column)],
        }
        if output.binary:
            binary.append(encode_binary(datatype, column))
            tensor["parameters"] = {"binary_data_size": len(binary[-1])}
        else:
            tensor["data"] = column.tolist() if hasattr(column, "tolist") else list(column)
        described.append(tensor)
    document: dict[str, Any] = {"model_name": model_name, "model_version": model_version}
    if request_id is not None:
        document["id"] = request_id
    document["outputs"] = described
    header = to_json(document)
    if not binary:
        return EncodedResponse(header, None)
    return EncodedResponse(b"".join([header, *binary]), len(header))
