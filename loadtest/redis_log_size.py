"""Redis memory and writer cost of the Redis prediction log, per prediction (docs/prediction-log.md).

Writes requests of 1, 10, 100 and 1000 rows through the service's own ``RedisPredictionLog``
into a private redis-server (loopback, free port, default configuration), flushing as a pod's
two workers would at a given request rate (one flush per worker every 100 ms), and prints per
prediction: the sum of ``MEMORY USAGE key SAMPLES 0`` over the log's keys, the growth of ``INFO
memory`` ``used_memory``, the writer's CPU (``time.process_time`` of the appends and flushes,
client included) and the Redis commands and pipeline round trips its flushes sent.

    .venv/bin/python -m loadtest.redis_log_size [--scale 1.0]

The ids' creation times are spread as at the stated rate (``new_prediction_ids(now=...)``), so
keys grouped by time hold what they would hold at that rate.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import redis

from loadtest.servers import RedisServer
from models.contract import default_contract
from models.contract.bodies import derived_ids
from prediction_log import (
    ModelCall,
    PredictionBlock,
    RedisPredictionLog,
    encode_entity_ids,
    new_prediction_ids,
)

MODEL_VERSION = "delivery_eta:5lz6bbxggczb6ax4"  # a real tag's length
WORKERS = 2
FLUSH_INTERVAL_S = 0.1


@dataclass(frozen=True)
class Shape:
    """Requests of ``rows`` rows arriving at ``rate`` requests/s to one pod."""

    name: str
    rows: int
    requests: int
    rate: float


SHAPES = (
    Shape("1 row, 2,900 req/s (one pod's capacity)", 1, 20_000, 2_900.0),
    Shape("1 row, 100 req/s", 1, 6_000, 100.0),
    Shape("1 row, 5 req/s", 1, 1_000, 5.0),
    Shape("10 rows, 2,900 req/s", 10, 4_000, 2_900.0),
    Shape("100 rows, 957 req/s", 100, 1_000, 957.0),
    Shape("1000 rows, 96 req/s", 1000, 200, 96.0),
)


def _blocks(shape: Shape, start: float) -> list[PredictionBlock]:
    """``shape.requests`` blocks of the default contract's width, created ``1/rate`` apart,
    with entity ids shaped like its examples and the entity sources and model call the
    service logs."""
    contract = default_contract()
    rng = np.random.default_rng(0)
    pools = [
        derived_ids(str(getattr(contract.fields[field], "example", field)), 800)
        for field in contract.entity_fields
    ]
    width, entity_features = len(contract.feature_names), len(contract.entity_fields)
    blocks = []
    for i in range(shape.requests):
        created_at = start + i / shape.rate
        key, _ = new_prediction_ids(shape.rows, now=created_at)
        rows = shape.rows
        blocks.append(
            PredictionBlock(
                key,
                created_at,
                MODEL_VERSION,
                rng.uniform(0, 50, (rows, width)),
                rng.uniform(5, 90, (rows, 3)),
                encode_entity_ids(
                    [[pool[n] for n in rng.integers(0, len(pool), rows)] for pool in pools]
                ),
                feature_sources=np.zeros((rows, entity_features), dtype=np.int8),
                call=ModelCall(0.8123, rows),
            )
        )
    return blocks


def _used_memory(client: redis.Redis) -> int:
    memory: dict[str, int] = client.info("memory")  # type: ignore[assignment]
    return int(memory["used_memory"])


def _commands(client: redis.Redis) -> int:
    stats: dict[str, dict[str, int]] = client.info("commandstats")  # type: ignore[assignment]
    return sum(
        int(v["calls"]) for k, v in stats.items() if k not in ("cmdstat_info", "cmdstat_memory")
    )


async def _write(url: str, blocks: list[PredictionBlock], per_flush: int) -> tuple[float, int]:
    """Append and flush ``blocks`` as the workers would; (writer CPU seconds, flushes)."""
    log = RedisPredictionLog(url, 6 * 3600, max_queue_rows=10**9)
    cpu, flushes = 0.0, 0
    try:
        for start in range(0, len(blocks), per_flush):
            began = time.process_time()
            for block in blocks[start : start + per_flush]:
                log.append(block)
            await log.flush()
            cpu += time.process_time() - began
            flushes += 1
    finally:
        await log.close()
    return cpu, flushes


def measure(url: str, shape: Shape) -> dict[str, float]:
    """One shape written into an empty Redis: the figures per prediction."""
    client = redis.Redis.from_url(url)
    client.flushall()
    client.config_resetstat()
    blocks = _blocks(shape, time.time())
    per_flush = max(1, round(shape.rate * FLUSH_INTERVAL_S / WORKERS))
    before = _used_memory(client)
    commands_before = _commands(client)
    cpu, flushes = asyncio.run(_write(url, blocks, per_flush))
    commands = _commands(client) - commands_before
    used = _used_memory(client) - before
    keys = list(client.scan_iter(count=1000))
    usage = sum(int(client.memory_usage(key, samples=0) or 0) for key in keys)  # type: ignore[arg-type,misc]
    encodings = sorted({client.object("encoding", key).decode() for key in keys})  # type: ignore[union-attr]
    client.flushall()
    client.close()
    rows = shape.requests * shape.rows
    return {
        "keys": len(keys),
        "memory_usage": usage / rows,
        "used_memory": used / rows,
        "cpu_us": cpu / rows * 1e6,
        "commands": commands / shape.requests,
        "round_trips": flushes / shape.requests,
        "per_flush": per_flush,
        "encoding": ",".join(encodings),  # type: ignore[dict-item]
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--scale", type=float, default=1.0, help="multiply the requests of every shape"
    )
    args = parser.parse_args()
    if shutil.which("redis-server") is None:
        raise SystemExit("redis-server not installed: run `make system-deps`")
    workdir = Path(tempfile.mkdtemp(prefix="redis-log-size-"))
    server = RedisServer(workdir)
    server.start()
    try:
        print(
            f"{'requests':<42}{'keys':>7}{'MEMORY USAGE':>14}{'used_memory':>13}"
            f"{'writer CPU':>12}{'commands':>10}{'flush/req':>11}  encoding"
        )
        print(f"{'':<42}{'':>7}{'B/pred':>14}{'B/pred':>13}{'us/pred':>12}{'/req':>10}{'':>11}")
        for shape in SHAPES:
            scaled = Shape(
                shape.name, shape.rows, max(1, int(shape.requests * args.scale)), shape.rate
            )
            r = measure(server.url, scaled)
            print(
                f"{shape.name:<42}{r['keys']:>7.0f}{r['memory_usage']:>14.1f}"
                f"{r['used_memory']:>13.1f}{r['cpu_us']:>12.2f}{r['commands']:>10.2f}"
                f"{r['round_trips']:>11.4f}  {r['encoding']}"
            )
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
