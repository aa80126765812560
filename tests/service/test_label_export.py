"""From production feedback to training data: predictions and labels sent to the real server,
then ``python -m operations.export_labels`` run against its prediction log (while
it serves) gives back exactly the labelled orders, as they were requested, with their actuals."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from models.contract.bodies import OrderGenerator, example_order, unknown_id
from models.store.artifact import load_artifact
from operations.label_file import SERVED_COLUMNS, training_columns
from tests.harness.local_server import ROOT, LocalServer

pytestmark = pytest.mark.server


def _feedback(client: httpx.Client, prediction_id: str, actual: float) -> None:
    body = {"prediction_id": prediction_id, "actual_delivery_time_min": actual}
    response = client.post("/v1/feedback", json=body)
    deadline = time.monotonic() + 5
    # Another worker may still hold the prediction in its queue (written every 100 ms): the
    # service says "not yet" (503), not "unknown" (404), for an id made moments ago.
    while response.status_code == 503 and time.monotonic() < deadline:
        time.sleep(0.2)
        response = client.post("/v1/feedback", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "joined"


def test_the_export_gives_back_the_labelled_requests_in_the_training_schema(
    server: LocalServer,
    client: httpx.Client,
    registered: Any,
    tmp_path: Path,
) -> None:
    artifact = load_artifact(registered.tag)
    contract, entities = artifact.contract, artifact.entities
    rng = random.Random(23)
    first, last = contract.entity_fields[0], contract.entity_fields[-1]
    known = {
        f: sorted(entities.tables[contract.entity_feature(f)])[:50] for f in contract.entity_fields
    }
    example = {**example_order(contract), **{f: ids[0] for f, ids in known.items()}}
    singles = [
        example,  # known entities: their online averages
        {**example, first: "export.r-1", last: "export:d_1"},  # unknown: the defaults
        {**example, contract.entity_feature(first): 55.0},  # an override
    ]
    batch = OrderGenerator(contract, known, override_share=0.0, unknown_share=0.0).orders(rng, 5)
    batch[3][last] = unknown_id(contract, last, rng)
    predicted_from = time.time()
    answers = []
    for order in singles:
        response = client.post("/v1/predict", json=order)
        assert response.status_code == 200, response.text
        answers.append(response.json())
    response = client.post("/v1/predict/batch", json={"orders": batch})
    assert response.status_code == 200, response.text
    answers += response.json()["predictions"]
    predicted_until = time.time()
    orders = singles + batch

    labelled = {0: 31.0, 2: 47.5, 3: 18.25, 5: 22.0, 6: 64.0}  # by position in `orders`
    labelled_from = time.time()
    for position, actual in labelled.items():
        _feedback(client, answers[position]["prediction_id"], actual)
    labelled_until = time.time()

    out = tmp_path / "labels.parquet"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "operations.export_labels",
            "--out",
            str(out),
            "--path",
            str(server.prediction_log_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        # The service's settings, as an operator runs it: the export takes the served model's
        # contract (other tests register models of other contracts in this store).
        env={**os.environ, "DELIVERY_ETA_MODEL_TAG": registered.tag},
    )

    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["rows_written"] >= len(labelled)  # other tests label predictions too
    frame = pd.read_parquet(out)
    # The served model's contract gives the columns: the training file's, then what was served.
    assert list(frame.columns) == [
        *training_columns(contract),
        *SERVED_COLUMNS,
        *contract.entity_features,
        "labelled_at",
    ]
    ours = {answer["prediction_id"]: position for position, answer in enumerate(answers)}
    exported = frame[frame["prediction_id"].isin(ours)].set_index("prediction_id")
    assert sorted(ours[pid] for pid in exported.index) == sorted(labelled)  # no unlabelled row
    for prediction_id, row in exported.iterrows():
        position = ours[str(prediction_id)]
        order, answer = orders[position], answers[position]
        for name, spec in contract.fields.items():  # the request as it was sent
            sent = order.get(name, getattr(spec, "default", None))
            assert row[name] == (bool(sent) if spec.kind == "boolean" else sent), name
        assert row[contract.target.column] == labelled[position]
        assert row["model_version"] == answer["model_version"] == registered.tag
        for name in (
            "predicted_delivery_time_min",
            "confidence_interval_lower",
            "confidence_interval_upper",
        ):
            assert row[name] == pytest.approx(answer[name], abs=1e-9), name
        # The entity averages the model was served: the request's, the online store's, or
        # the defaults, as the response said.
        for field in contract.entity_fields:
            name = contract.entity_feature(field)
            source = answer["features_source"][name]
            served = {
                "request": order.get(name),
                "online": entities.tables[name].get(order[field]),
                "default": entities.defaults[name],
            }[source]
            assert row[name] == pytest.approx(served, abs=1e-9), (name, source)
        created = row[contract.timestamp.column].timestamp()
        assert predicted_from - 1e-3 <= created <= predicted_until + 1e-3
        assert labelled_from - 1e-3 <= row["labelled_at"].timestamp() <= labelled_until + 1e-3
    first_feature, last_feature = contract.entity_feature(first), contract.entity_feature(last)
    sources = {answers[p]["features_source"][first_feature] for p in labelled}
    assert {"online", "request"} <= sources  # the override and the store both checked
    assert "default" in {answers[p]["features_source"][last_feature] for p in labelled}
