"""The model-input rows of the columnar cells' own calls: the v2 binary bodies decoded and
assembled as the service's pipeline does (embedded feature store, the model's entity snapshot),
so that the model-only ceiling is measured on the rows the cells send, not on other rows.

Trees cost per row by the depth each row walks: the bench's generated orders walk ~10 % deeper
than the model's holdout rows, so a ceiling on the holdout is ~10 % higher than the one the
cells could ever reach (see docs/performance.md, "The columnar cells").
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np

from loadtest.v2_bodies import read_binary_records
from models.features import FeatureAssembler
from models.store.artifact import load_artifact
from serving.inference_protocol.inputs import input_specs
from serving.inference_protocol.requests import decode_infer_request
from serving.inference_protocol.responses import OUTPUT_NAMES
from serving.pipeline.feature_store import EmbeddedFeatureStore
from serving.schema import order_model


def cell_model_rows(tag: str, binary_bodies: Path) -> np.ndarray:
    """Every row of the ``v2-binary-<rows>.bin`` records in ``binary_bodies``, as the model
    scores them (one matrix, the records in order)."""
    artifact = load_artifact(tag)
    contract = artifact.contract
    specs = input_specs(order_model(contract).model_json_schema())
    store = EmbeddedFeatureStore(artifact.entities, contract)
    assembler = FeatureAssembler(contract)
    matrices = []
    for header_length, body in read_binary_records(binary_bodies):
        orders = decode_infer_request(
            body, str(header_length), specs, OUTPUT_NAMES, max_rows=len(body)
        ).orders
        online = asyncio.run(store.lookup(assembler.column_entity_ids(orders)))
        matrix, _sources = assembler.assemble_columns(orders, online, artifact.entities.defaults)
        matrices.append(matrix)
    return np.ascontiguousarray(np.concatenate(matrices))


def write_cell_model_rows(tag: str, binary_bodies: Path, out: Path) -> Path:
    """:func:`cell_model_rows` saved as ``out`` (``.npy``), for ``runtime_bench --rows-file``."""
    np.save(out, cell_model_rows(tag, binary_bodies))
    return out
