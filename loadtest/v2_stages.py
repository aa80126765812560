"""Where one Open Inference Protocol (v2) binary infer call's time goes, in-process (no HTTP).

    python -m loadtest.v2_stages [--rows 10000] [--repeats 40] [--callers 4] [--log-at-cap]

The served model (``DELIVERY_ETA_MODEL_TAG``, else the production one, in ``$BENTOML_HOME``) and
the worker's own pipeline (``serving.startup.build_pipeline``: embedded feature store, adaptive
batcher, SQLite prediction log in a temporary folder). The body is the benchmark's
(``loadtest.v2_bodies``: seeded random orders of the served contract, known entity ids). Each
stage is timed alone, then the whole route body -> body: its wall time, the model's call (in the
model's thread), the CPU of the event-loop thread (everything but the model and the log's
write: what a worker's event loop spends per call), the part of it the model call's observers
take (clamping, cohorts, metrics, drift: once per call, on the merged rows) and the log's
write. Every figure is the minimum of ``--repeats`` (the least disturbed by other work on the
machine); µs/row divides it by the rows. The log's writer-thread CPU is the mean instead: a
minimum would leave out the checkpoints and evictions that some writes pay for all.
``--log-at-cap`` first fills the log to its size cap (``DELIVERY_ETA_PREDICTION_LOG_MAX_MIB``,
512 by default) with copies of the call's block, as a server under sustained 10,000-row traffic
has it within a minute: the writes then evict the oldest tenth of the cap now and then (every
~65 writes of 10,000 rows). Last, ``--callers`` routes at once (the bench's 4
callers): the event loop's CPU per call when requests wait behind a running model call (what
the batch dispatcher's controller does meanwhile shows only then), the mean over the calls.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import math
import os
import random
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from loadtest.v2_bodies import binary_body, input_tensors, v2_orders
from models.features import FeatureAssembler
from models.runtime_selection import select_runtime
from models.served_contract import known_entity_ids
from models.store.artifact import ModelArtifact, load_artifact
from models.store.stages import resolve_serving_tag
from prediction_log import PredictionBlock, PredictionIds, new_block_key
from prediction_log.settings import PredictionLogSettings
from serving.inference_protocol.datatypes import encode_bytes
from serving.inference_protocol.inputs import input_specs
from serving.inference_protocol.requests import RequestedOutput, decode_infer_request
from serving.inference_protocol.responses import (
    LOWER,
    OUTPUT_NAMES,
    POINT,
    UPPER,
    answer_values,
    encode_infer_response,
)
from serving.pipeline.model_calls import ChampionCalls
from serving.schema import order_model
from serving.settings import BatchingSettings, ServiceSettings
from serving.startup import build_feature_store, build_metrics, build_pipeline
from serving.telemetry.request_notes import request_scope

ROUTE = "/v2/models/{model_name}/infer"


def _best(samples: list[float]) -> float:
    return min(samples)


async def _timed(call: Callable[[], Awaitable[Any]], repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        await call()
        samples.append(time.perf_counter() - started)
    return _best(samples)


async def measure(
    artifact: ModelArtifact,
    rows: int,
    repeats: int,
    workdir: Path,
    callers: int = 4,
    log_at_cap: bool = False,
) -> list[tuple[str, float]]:
    """(stage, seconds per call) of one ``rows``-row binary call of ``artifact``'s contract."""
    contract = artifact.contract
    specs = input_specs(order_model(contract).model_json_schema())
    orders = v2_orders(contract, random.Random(0), rows, known_entity_ids(artifact.tag, contract))
    body, header_length = binary_body(
        orders, input_tensors(order_model(contract).model_json_schema())
    )
    header = str(header_length)
    settings = ServiceSettings(
        batching=BatchingSettings(max_batch_rows=max(rows, 1000)),
        prediction_log=PredictionLogSettings(path=workdir / "predictions.sqlite3"),
    )
    store = build_feature_store(settings, artifact)
    pipeline = build_pipeline(settings, artifact, store, build_metrics(artifact, store))
    log = pipeline.prediction_log
    assert log is not None
    model = select_runtime(artifact, settings.model_runtime, announce=False)
    assembler = FeatureAssembler(contract)
    everything = tuple(RequestedOutput(name, True) for name in OUTPUT_NAMES)

    def decode() -> Any:
        return decode_infer_request(body, header, specs, OUTPUT_NAMES, rows)

    columns = decode().orders
    ids = assembler.column_entity_ids(columns)
    online = await store.lookup(ids)
    features, _ = assembler.assemble_columns(columns, online, artifact.entities.defaults)
    outputs = model.predict_rows(features)

    async def run(call: Callable[[], Any]) -> Any:
        return call()

    stages = [
        ("decode + validation", await _timed(lambda: run(decode), repeats)),
        ("feature store lookup", await _timed(lambda: store.lookup(ids), repeats)),
        (
            "feature assembly",
            await _timed(
                lambda: run(
                    lambda: assembler.assemble_columns(columns, online, artifact.entities.defaults)
                ),
                repeats,
            ),
        ),
        (
            "model (one call)",
            await _timed(lambda: run(lambda: model.predict_rows(features)), repeats),
        ),
        (
            "prediction ids, made and encoded",
            await _timed(
                lambda: run(
                    lambda: encode_bytes(PredictionIds(new_block_key(rows), rows).ascii_table())
                ),
                repeats,
            ),
        ),
        (
            "answer encoding (the three numbers)",
            await _timed(
                lambda: run(
                    lambda: encode_infer_response(
                        "m",
                        "1",
                        None,
                        everything[:3],
                        {POINT: outputs[:, 0], LOWER: outputs[:, 1], UPPER: outputs[:, 2]},
                    )
                ),
                repeats,
            ),
        ),
    ]

    # The whole route, as serving.server.inference_routes answers it.
    model_ms: list[float] = []
    blocks: list[PredictionBlock] = []
    append = log.append

    def noted(block: PredictionBlock) -> None:
        model_ms.append(block.call.ms if block.call is not None else 0.0)
        blocks[:] = [block]
        append(block)

    log.append = noted  # type: ignore[method-assign]

    async def route() -> bytes:
        decoded = decode()
        with request_scope("v2-stages", ROUTE):
            batch = await pipeline.predict_columns(decoded.orders)
        values = answer_values(batch.outputs, batch.prediction_ids, decoded.outputs)
        return encode_infer_response("m", "1", None, decoded.outputs, values).body

    # The observers of each model call, timed where they run (the event loop) by the class's
    # own method wrapped for the duration of the measurement.
    observers: list[float] = []
    observe = ChampionCalls.__call__

    def timed_observe(self: ChampionCalls, call: Any) -> Any:
        cpu = time.thread_time()
        try:
            return observe(self, call)
        finally:
            observers.append(time.thread_time() - cpu)

    await route()
    await log.flush()
    if log_at_cap:
        await _fill_to_cap(log, blocks[-1], settings.prediction_log.max_mib)
    write_cpu: list[float] = []
    write_now = log._write_now  # type: ignore[attr-defined]

    def timed_write(written: list[PredictionBlock]) -> None:
        started = time.thread_time()
        try:
            write_now(written)
        finally:
            write_cpu.append(time.thread_time() - started)

    log._write_now = timed_write  # type: ignore[attr-defined]
    walls, loop_cpu, writes = [], [], []
    ChampionCalls.__call__ = timed_observe  # type: ignore[method-assign]
    try:
        for _ in range(repeats):
            started, cpu = time.perf_counter(), time.thread_time()
            await route()
            loop_cpu.append(time.thread_time() - cpu)
            walls.append(time.perf_counter() - started)
            started = time.perf_counter()
            await log.flush()
            writes.append(time.perf_counter() - started)
    finally:
        ChampionCalls.__call__ = observe  # type: ignore[method-assign]
    stages += [
        ("route body -> body: wall", _best(walls)),
        ("route: the model's call (its thread)", _best(model_ms[1:]) / 1000),
        ("route: event-loop thread CPU (all but model, log write)", _best(loop_cpu)),
        ("route: of which the model call's observers", _best(observers)),
        ("route: prediction log write (wall, its thread)", _best(writes)),
        ("route: prediction log write (its thread's CPU, mean)", statistics.mean(write_cpu)),
    ]

    async def caller(calls: int) -> None:
        for _ in range(calls):
            await route()

    per_caller = max(repeats // callers, 1)
    cpu = time.thread_time()
    await asyncio.gather(*(caller(per_caller) for _ in range(callers)))
    stages.append(
        (
            f"route, {callers} callers at once: event-loop thread CPU per call (mean)",
            (time.thread_time() - cpu) / (per_caller * callers),
        )
    )
    await log.flush()
    pipeline.close()
    await log.close()
    await store.close()
    return stages


async def _fill_to_cap(log: Any, block: PredictionBlock, max_mib: float) -> None:
    """Write copies of ``block`` (new keys) until the log's pages reach its cap, and some more:
    the writes that follow evict, as at a server's steady state."""
    stored = block.features.nbytes + block.outputs.nbytes + len(block.entity_ids or b"")
    copies = math.ceil(max_mib * 2**20 / stored * 1.1)
    for _ in range(copies):  # one at a time: the queue holds 100,000 rows by default
        log.append(dataclasses.replace(block, block_key=new_block_key(len(block))))
        await log.flush()


def table(stages: list[tuple[str, float]], rows: int) -> str:
    """The stages as a markdown table: ms per call and µs per row."""
    lines = ["| stage | ms / call | µs / row |", "|---|--:|--:|"]
    lines += [f"| {name} | {s * 1e3:.2f} | {s * 1e6 / rows:.3f} |" for name, s in stages]
    return "\n".join(lines)


def main() -> None:
    """Parse the flags, measure, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=40)
    parser.add_argument("--callers", type=int, default=4, help="routes at once, last stage")
    parser.add_argument(
        "--log-at-cap", action="store_true", help="fill the prediction log to its size cap first"
    )
    args = parser.parse_args()
    artifact = load_artifact(resolve_serving_tag(os.environ.get("DELIVERY_ETA_MODEL_TAG")))
    with tempfile.TemporaryDirectory(prefix="v2-stages-") as workdir:
        stages = asyncio.run(
            measure(
                artifact,
                args.rows,
                args.repeats,
                Path(workdir),
                callers=args.callers,
                log_at_cap=args.log_at_cap,
            )
        )
    print(f"model {artifact.tag}, {args.rows} rows per call, min of {args.repeats}")
    print(table(stages, args.rows))


if __name__ == "__main__":
    main()
