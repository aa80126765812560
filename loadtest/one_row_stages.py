"""One order through ``/v1/predict``'s body -> body path and through a v2 JSON infer's, side by
side, in-process (no HTTP): where a one-row v2 call spends more or less CPU than a /v1 one.

    python -m loadtest.one_row_stages [--repeats 2000]

The served model (``DELIVERY_ETA_MODEL_TAG``, else the production one, in ``$BENTOML_HOME``) and
the worker's own pipeline (``serving.startup.build_pipeline``). The orders are the benchmark's
one-row bodies (``loadtest.v2_bodies``). Per stage: /v1's step (pydantic validation of the
order, ``assemble``, the ``Prediction`` as JSON) and v2's (``decode_infer_request``,
``assemble_columns``, ``encode_infer_response``), then the whole body -> body of each, calls
alternated: CPU of the event-loop thread per call (the model runs in the batcher's thread).
Figures are µs, the minimum over rounds of ``--repeats`` calls (the least disturbed).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from loadtest.v2_bodies import input_tensors, json_body, v2_orders
from models.features import FeatureAssembler, OnlineValues
from models.served_contract import known_entity_ids
from models.store.artifact import ModelArtifact, load_artifact
from models.store.stages import resolve_serving_tag
from prediction_log.settings import PredictionLogSettings
from serving.inference_protocol.inputs import input_specs
from serving.inference_protocol.requests import decode_infer_request
from serving.inference_protocol.responses import (
    OUTPUT_NAMES,
    answer_values,
    encode_infer_response,
)
from serving.schema import order_model
from serving.settings import ServiceSettings
from serving.startup import build_feature_store, build_metrics, build_pipeline
from serving.telemetry.request_notes import request_scope

ROUNDS = 5


def _cpu_us(call: Callable[[], Any], repeats: int) -> float:
    best = float("inf")
    for _ in range(ROUNDS):
        started = time.thread_time()
        for _ in range(repeats):
            call()
        best = min(best, (time.thread_time() - started) / repeats)
    return best * 1e6


async def measure(
    artifact: ModelArtifact, repeats: int, workdir: Path
) -> list[tuple[str, float, float]]:
    """(stage, /v1 µs, v2 µs) of one order, each stage and the whole body -> body."""
    contract = artifact.contract
    order_type = order_model(contract)
    schema = order_type.model_json_schema()
    specs = input_specs(schema)
    rng = random.Random(1)
    orders = [
        v2_orders(contract, rng, 1, known_entity_ids(artifact.tag, contract)) for _ in range(8)
    ]
    v1_bodies = [json.dumps(o[0], separators=(",", ":")).encode() for o in orders]
    v2_bodies = [json_body(o, input_tensors(schema)) for o in orders]
    settings = ServiceSettings(prediction_log=PredictionLogSettings(path=workdir / "p.sqlite3"))
    store = build_feature_store(settings, artifact)
    pipeline = build_pipeline(settings, artifact, store, build_metrics(artifact, store))
    assembler, defaults = FeatureAssembler(contract), artifact.entities.defaults

    def v1_decode(body: bytes) -> Any:  # as BentoML's JSON serde, then service.predict
        data = order_type.model_validate_json(body)
        return order_type.model_construct(**{k: getattr(data, k) for k in order_type.model_fields})

    def v2_decode(body: bytes) -> Any:
        return decode_infer_request(body, None, specs, OUTPUT_NAMES, 1000)

    def v2_values(batch: Any, decoded: Any) -> dict[str, Any]:
        return answer_values(batch.outputs, batch.prediction_ids, decoded.outputs)

    async def v1(body: bytes) -> bytes:
        with request_scope("one-row", "/v1/predict"):
            batch = await pipeline.predict([v1_decode(body)])
            (prediction,) = batch.predictions()
            return prediction.model_dump_json().encode()

    async def v2(body: bytes) -> bytes:
        with request_scope("one-row", "/v2/models/{model_name}/infer"):
            decoded = v2_decode(body)
            batch = await pipeline.predict_columns(decoded.orders)
            answer = encode_infer_response(
                "m", "1", None, decoded.outputs, v2_values(batch, decoded)
            )
            return answer.body

    row, columns = v1_decode(v1_bodies[0]), v2_decode(v2_bodies[0])
    online = OnlineValues({name: [30.0] for name in contract.entity_features})
    batch = await pipeline.predict_columns(columns.orders)
    stages = [
        (
            "decode + validation",
            _cpu_us(lambda: v1_decode(v1_bodies[0]), repeats),
            _cpu_us(lambda: v2_decode(v2_bodies[0]), repeats),
        ),
        (
            "feature assembly",
            _cpu_us(lambda: assembler.assemble([row], online, defaults), repeats),
            _cpu_us(lambda: assembler.assemble_columns(columns.orders, online, defaults), repeats),
        ),
        (
            "answer encoding",
            _cpu_us(lambda: batch.predictions()[0].model_dump_json(), repeats),
            _cpu_us(
                lambda: encode_infer_response(
                    "m", "1", None, columns.outputs, v2_values(batch, columns)
                ),
                repeats,
            ),
        ),
    ]
    totals: dict[str, list[float]] = {"v1": [], "v2": []}
    routes: dict[str, tuple[Callable[[bytes], Awaitable[bytes]], list[bytes]]] = {
        "v1": (v1, v1_bodies),
        "v2": (v2, v2_bodies),
    }
    for _ in range(ROUNDS):
        for name, (route, bodies) in routes.items():
            started = time.thread_time()
            for i in range(repeats):
                await route(bodies[i % len(bodies)])
            totals[name].append((time.thread_time() - started) / repeats * 1e6)
            assert pipeline.prediction_log is not None
            await pipeline.prediction_log.flush()
    stages.append(("body -> body (event-loop thread)", min(totals["v1"]), min(totals["v2"])))
    pipeline.close()
    await pipeline.prediction_log.close()
    await store.close()
    return stages


def table(stages: list[tuple[str, float, float]]) -> str:
    """The stages as a markdown table."""
    lines = ["| stage | /v1/predict µs | v2 JSON µs | v2 ÷ v1 |", "|---|--:|--:|--:|"]
    lines += [f"| {name} | {a:.1f} | {b:.1f} | {b / a:.2f} |" for name, a, b in stages]
    return "\n".join(lines)


def main() -> None:
    """Parse the flags, measure, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2000)
    args = parser.parse_args()
    artifact = load_artifact(resolve_serving_tag(os.environ.get("DELIVERY_ETA_MODEL_TAG")))
    with tempfile.TemporaryDirectory(prefix="one-row-") as workdir:
        stages = asyncio.run(measure(artifact, args.repeats, Path(workdir)))
    print(f"model {artifact.tag}, one order, min of {ROUNDS} rounds of {args.repeats}")
    print(table(stages))


if __name__ == "__main__":
    main()
