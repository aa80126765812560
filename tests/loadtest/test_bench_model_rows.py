"""The ceiling's rows are the v2 binary cells' own: the bodies decoded and assembled as the
pipeline does, equal to the row-by-row assembly of the same orders."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np

from loadtest.bench.model_rows import cell_model_rows, write_cell_model_rows
from loadtest.v2_bodies import write_v2_bodies
from models.features import FEATURE_SOURCES, FeatureAssembler
from models.served_contract import known_entity_ids
from models.store.artifact import load_artifact
from serving.pipeline.feature_store import EmbeddedFeatureStore
from serving.schema import order_model


def test_the_cells_rows_are_what_the_model_scores(registered, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    tag = str(registered.tag)
    artifact = load_artifact(tag)
    contract = artifact.contract
    known = known_entity_ids(tag, contract)
    v1_path, _, binary_path = write_v2_bodies(
        tmp_path, contract, count=3, rows=40, seed=5, known_ids=known
    )
    rows = cell_model_rows(tag, binary_path)

    # The same orders, through /v1's row path: parsed one by one, assembled row-wise.
    model = order_model(contract)
    orders = [
        model(**order)
        for line in v1_path.read_text().splitlines()
        for order in json.loads(line)["orders"]
    ]
    assembler = FeatureAssembler(contract)
    store = EmbeddedFeatureStore(artifact.entities, contract)
    online = asyncio.run(store.lookup(assembler.entity_ids(orders)))
    expected, sources = assembler.assemble(orders, online, artifact.entities.defaults)

    assert rows.shape == (120, len(contract.feature_names)) and rows.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(rows, expected)
    # Known ids: most entity features came from the store, not from the defaults.
    assert (sources == FEATURE_SOURCES.index("online")).mean() > 0.5

    saved = write_cell_model_rows(tag, binary_path, tmp_path / "rows.npy")
    np.testing.assert_array_equal(np.load(saved), rows)
