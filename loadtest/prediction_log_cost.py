"""Storage cost of the prediction log per million predictions (docs/prediction-log.md).

Writes predictions through the service's own log classes -- single-row requests and 1000-row
batch requests -- into a fresh SQLite file and a private redis-server (loopback, free port),
and reports bytes per prediction and per million, plus the queue's memory per queued row.

    .venv/bin/python -m loadtest.prediction_log_cost [--single 20000] [--batch-rows 200000]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sqlite3
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np
import redis

from loadtest.servers import RedisServer
from models.contract import FeatureContract, default_contract
from models.contract.bodies import derived_ids
from prediction_log import (
    PredictionBlock,
    RedisPredictionLog,
    SQLitePredictionLog,
    encode_entity_ids,
    new_prediction_ids,
)
from prediction_log.buffered import BufferedLog

MODEL_VERSION = "delivery_eta:5lz6bbxggczb6ax4"  # a real tag's length


def _blocks(
    total_rows: int, rows_per_block: int, contract: FeatureContract | None = None
) -> list[PredictionBlock]:
    """Blocks of the contract's width (default: the default contract), with entity ids
    shaped like its examples (``r_0042`` -> ``r_0000`` .. ``r_0799``)."""
    contract = contract or default_contract()
    rng = np.random.default_rng(0)
    pools = {
        field: derived_ids(str(getattr(contract.fields[field], "example", field)), 800)
        for field in contract.entity_fields
    }
    blocks = []
    for _ in range(total_rows // rows_per_block):
        key, _ = new_prediction_ids(rows_per_block)
        features = rng.uniform(0, 50, (rows_per_block, len(contract.feature_names)))
        outputs = rng.uniform(5, 90, (rows_per_block, 3))
        entity_ids = encode_entity_ids(
            [
                [pool[n] for n in rng.integers(0, len(pool), rows_per_block)]
                for pool in pools.values()
            ]
        )
        blocks.append(
            PredictionBlock(key, time.time(), MODEL_VERSION, features, outputs, entity_ids)
        )
    return blocks


async def _fill(log: BufferedLog, blocks: list[PredictionBlock]) -> None:
    for start in range(0, len(blocks), 500):
        for block in blocks[start : start + 500]:
            log.append(block)
        await log.flush()
    await log.close()


def sqlite_bytes(blocks: list[PredictionBlock], workdir: Path) -> int:
    """Bytes of pages in use after writing ``blocks`` into a fresh file."""
    path = workdir / f"cost-{len(blocks)}.sqlite3"
    log = SQLitePredictionLog(path, 3600, max_queue_rows=10**9)
    asyncio.run(_fill(log, blocks))
    with sqlite3.connect(path) as db:
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        free = db.execute("PRAGMA freelist_count").fetchone()[0]
        page_size = db.execute("PRAGMA page_size").fetchone()[0]
    return int((pages - free) * page_size)


def redis_bytes(blocks: list[PredictionBlock], url: str) -> int:
    """Growth of Redis' used_memory while ``blocks`` are written."""
    client = redis.Redis.from_url(url)
    client.flushall()
    before = int(client.info("memory")["used_memory"])
    log = RedisPredictionLog(url, 3600, max_queue_rows=10**9)
    asyncio.run(_fill(log, blocks))
    after = int(client.info("memory")["used_memory"])
    client.flushall()
    client.close()
    return after - before


def queued_bytes(make: Callable[[], list[PredictionBlock]]) -> int:
    """Python heap held by the blocks a queue would hold."""
    tracemalloc.start()
    blocks = make()
    size = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del blocks
    return size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--single", type=int, default=20_000, help="single-row requests")
    parser.add_argument("--batch-rows", type=int, default=200_000, help="rows in 1000-row batches")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="prediction-log-cost-"))
    redis_server = None
    try:
        shapes = {
            "single-row requests": (args.single, 1),
            "1000-row batches": (args.batch_rows, 1000),
        }
        results: dict[str, dict[str, float]] = {}
        url = None
        if shutil.which("redis-server"):
            redis_server = RedisServer(workdir)
            redis_server.start()
            url = redis_server.url
        for name, (rows, per_block) in shapes.items():
            blocks = _blocks(rows, per_block)
            results[name] = {"sqlite": sqlite_bytes(blocks, workdir) / rows}
            if url:
                results[name]["redis"] = redis_bytes(blocks, url) / rows
            results[name]["queue"] = queued_bytes(lambda r=rows, p=per_block: _blocks(r, p)) / rows
        print(f"{'requests':<22}{'store':<8}{'B/prediction':>14}{'GiB/million':>13}")
        for name, by_store in results.items():
            for store, per_row in by_store.items():
                label = "memory" if store == "queue" else store
                print(f"{name:<22}{label:<8}{per_row:>14.0f}{per_row * 1e6 / 2**30:>13.3f}")
    finally:
        if redis_server is not None:
            redis_server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
