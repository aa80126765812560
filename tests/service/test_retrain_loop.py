"""Closing the loop for real: a file-trained production model serves, feedback arrives,
``make retrain`` exports the labels from the live log, trains a candidate on history + labels
with the newest labelled orders as holdout, and gates it against production."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pandas as pd
import yaml

from examples.warehouse_export import order_export
from models.contract import default_contract
from tests.harness.local_server import local_server
from tests.harness.store_commands import api_order, run_with_store

BATCHES, BATCH_ROWS = 20, 40


def test_export_labels_then_retrain_and_gate(tmp_path: Path) -> None:
    contract = default_contract()  # train.py without CONTRACT=
    world = order_export(24_000, days=48, seed=31)  # one world: its past and its future
    history, future = world.iloc[:20_000], world.iloc[20_000:]
    history.to_csv(tmp_path / "history.csv", index=False)
    home = tmp_path / "home"
    first = run_with_store(
        [
            ".venv/bin/python",
            "train.py",
            "--small",
            "--card-dir",
            "",
            "--stage",
            "production",
            "--data",
            str(tmp_path / "history.csv"),
        ],
        home,
    )
    assert first.returncode == 0, first.stderr[-3000:]

    sent: dict[str, dict[str, object]] = {}
    with local_server(tmp_path / "server.log", env={"BENTOML_HOME": str(home)}) as server:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            for batch in range(BATCHES):
                rows = future.iloc[batch * BATCH_ROWS : (batch + 1) * BATCH_ROWS]
                orders = [api_order(r, contract) for r in rows.to_dict("records")]
                answer = client.post("/v1/predict/batch", json={"orders": orders})
                assert answer.status_code == 200, answer.text
                actuals = rows[contract.target.column]
                for order, prediction, actual in zip(
                    orders, answer.json()["predictions"], actuals, strict=True
                ):
                    sent[prediction["prediction_id"]] = {**order, "actual": float(actual)}
            for prediction_id, order in sent.items():
                label = {
                    "prediction_id": prediction_id,
                    "actual_delivery_time_min": order["actual"],
                }
                assert client.post("/v1/feedback", json=label).status_code == 200

        # make retrain as documented, the export reading the live server's prediction log.
        retrain = run_with_store(
            [
                "make",
                "--no-print-directory",
                "retrain",
                f"DATA={tmp_path / 'history.csv'}",
                f"LABELS={tmp_path / 'labels.parquet'}",
                "TRAIN_ARGS=--small --card-dir=",
            ],
            home,
            DELIVERY_ETA_PREDICTION_LOG_PATH=str(server.prediction_log_path),
        )
    output = retrain.stdout + retrain.stderr
    summaries = [json.loads(line) for line in retrain.stdout.splitlines() if line.startswith("{")]
    assert [s["rows_written"] for s in summaries] == [len(sent)], output[-3000:]
    assert "Decision:" in output, output[-3000:]
    assert "labelled orders (exported feedback)" in output
    assert (retrain.returncode == 0) == ("Decision: PROMOTE" in output), output[-3000:]

    labels = pd.read_parquet(tmp_path / "labels.parquet")
    assert set(labels["prediction_id"]) == set(sent)
    by_id = labels.set_index("prediction_id")
    for prediction_id, order in list(sent.items())[::97]:
        for name in contract.fields:  # the request as sent, in the training file's columns
            assert by_id.loc[prediction_id, name] == order[name], name
        assert by_id.loc[prediction_id, contract.target.column] == order["actual"]

    store = home / "models" / "delivery_eta"
    infos = [yaml.safe_load((v / "model.yaml").read_text()) for v in store.iterdir() if v.is_dir()]
    (candidate,) = [i for i in infos if "labels" in i["metadata"]["training_data"]]
    recorded = candidate["metadata"]["training_data"]
    assert recorded["labels"]["rows_read"] == 800
    ranges = recorded["split_time_ranges"]
    # The holdout is the newest labelled orders, newer than every training order.
    assert pd.Timestamp(ranges["holdout"][0]) > pd.Timestamp(ranges["train"][1])
    assert pd.Timestamp(ranges["holdout"][0]) >= labels[contract.timestamp.column].min()
    assert 0 < candidate["metadata"]["row_counts"]["holdout"] <= 0.2 * 800
