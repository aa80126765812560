"""Bodies files for the wrk scripts, written from the contract the service under test serves.

A wrk Lua script cannot build an order from a feature contract, so Python writes the bodies --
one JSON body per line, built by ``models.contract.bodies`` with the entity ids the served model
knows (from this machine's model store, when it holds the model) -- and ``predict.lua`` /
``bench.lua`` / ``status_tally.lua`` cycle through them (``wrk ... -s loadtest/predict.lua URL
-- FILE``). By hand: ``python -m models.served_contract bodies --url URL --out FILE``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from models.contract import FeatureContract
from models.contract.bodies import example_order
from models.served_contract import fetch_contract, load_ids, write_bodies_file

SINGLE_BODIES = 1000
"""Distinct single orders a run cycles through (ids, values and overrides all vary)."""
BATCH_BODIES = 32
"""Distinct batches per batch size (a 1000-row body is ~100 KB)."""


@dataclass(frozen=True)
class WrkBodies:
    """The bodies files of one contract: single orders, and batches per row count."""

    contract: FeatureContract
    single: Path
    batch: dict[int, Path] = field(default_factory=dict)

    @property
    def probe(self) -> bytes:
        """One order (the contract's example): what a lone-latency probe sends."""
        return json.dumps(example_order(self.contract)).encode()

    def script_args(self, rows: int | None = None) -> list[str]:
        """The wrk script arguments (after ``--``): the single bodies, or the ``rows``-order
        batches."""
        return [str(self.single if rows is None else self.batch[rows])]


def write_wrk_bodies(
    url: str,
    out: Path,
    batch_rows: Iterable[int] = (),
    *,
    contract: FeatureContract | None = None,
    seed: int = 0,
) -> WrkBodies:
    """Write the bodies for the service at ``url`` into ``out`` (its contract from
    ``GET /contract`` unless given): ``single.jsonl`` and ``batch-<rows>.jsonl`` per row count."""
    contract = contract or fetch_contract(url)
    known = load_ids(url, contract)
    single = write_bodies_file(
        out / "single.jsonl", contract, count=SINGLE_BODIES, seed=seed, known_ids=known
    )
    batch = {
        rows: write_bodies_file(
            out / f"batch-{rows}.jsonl",
            contract,
            count=BATCH_BODIES,
            rows=rows,
            seed=seed + rows,
            known_ids=known,
        )
        for rows in batch_rows
    }
    return WrkBodies(contract, single, batch)
