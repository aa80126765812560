"""``make retrain`` on the labels a service really produces: most predictions come from a few
``/v1/predict/batch`` calls (every row of a batch shares one timestamp), then some single
calls. The newest 15 % of the labelled orders -- the holdout -- then ends inside the last
batch: the split must cut through its rows, each order on one side only."""

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

BATCHES, BATCH_ROWS, SINGLES = 8, 40, 20
LABELS = BATCHES * BATCH_ROWS + SINGLES  # 340: above the 330 the default split needs
HOLDOUT = round(0.15 * LABELS)  # 51: the 20 singles and the newest 31 rows of the last batch


def test_retrain_cuts_the_label_holdout_inside_a_batch(tmp_path: Path) -> None:
    contract = default_contract()
    # One synthetic world: the history trains production, the future is what the service
    # sees and gets true delivery times for (realistic labels: a good candidate can pass).
    world = order_export(20_000 + LABELS, days=45, seed=47)
    history, future = world.iloc[:20_000], world.iloc[20_000:]
    history.to_csv(tmp_path / "history.csv", index=False)
    home = tmp_path / "home"
    train = [".venv/bin/python", "train.py", "--small", "--card-dir", "", "--stage", "production"]
    first = run_with_store([*train, "--data", str(tmp_path / "history.csv")], home)
    assert first.returncode == 0, first.stderr[-3000:]

    actual: dict[str, float] = {}
    batch_ids: list[list[str]] = []
    target = contract.target.column
    with local_server(tmp_path / "server.log", env={"BENTOML_HOME": str(home)}) as server:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            for batch in range(BATCHES):
                rows = future.iloc[batch * BATCH_ROWS : (batch + 1) * BATCH_ROWS]
                orders = [api_order(r, contract) for r in rows.to_dict("records")]
                answer = client.post("/v1/predict/batch", json={"orders": orders})
                assert answer.status_code == 200, answer.text
                ids = [p["prediction_id"] for p in answer.json()["predictions"]]
                batch_ids.append(ids)
                actual.update(zip(ids, rows[target].astype(float), strict=True))
            for row in future.iloc[BATCHES * BATCH_ROWS :].to_dict("records"):
                answer = client.post("/v1/predict", json=api_order(row, contract))
                assert answer.status_code == 200, answer.text
                actual[answer.json()["prediction_id"]] = float(row[target])
            for prediction_id, minutes in actual.items():
                label = {"prediction_id": prediction_id, "actual_delivery_time_min": minutes}
                assert client.post("/v1/feedback", json=label).status_code == 200

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
    assert retrain.returncode == 0, output[-4000:]
    summaries = [json.loads(line) for line in retrain.stdout.splitlines() if line.startswith("{")]
    assert [s["rows_written"] for s in summaries] == [LABELS], output[-3000:]
    assert "order id column 'prediction_id'" in output

    labels = pd.read_parquet(tmp_path / "labels.parquet")
    ts = contract.timestamp.column
    stamps = labels.set_index("prediction_id")[ts]
    assert all(stamps[ids].nunique() == 1 for ids in batch_ids)  # a batch: one timestamp
    last_batch = stamps[batch_ids[-1]].iloc[0]
    assert (stamps > last_batch).sum() == SINGLES

    store = home / "models" / "delivery_eta"
    infos = {
        v: yaml.safe_load((v / "model.yaml").read_text()) for v in store.iterdir() if v.is_dir()
    }
    ((path, candidate),) = [
        (v, i) for v, i in infos.items() if "labels" in i["metadata"]["training_data"]
    ]
    recorded = candidate["metadata"]["training_data"]
    assert recorded["labels"]["rows_read"] == LABELS
    assert recorded["labels"]["id_column"] == "prediction_id"
    assert candidate["metadata"]["row_counts"]["holdout"] == HOLDOUT
    ranges = recorded["split_time_ranges"]
    # The cut is inside the last batch: its older rows are the calibration's newest orders,
    # its newer rows the holdout's oldest, at the same timestamp.
    assert pd.Timestamp(ranges["calibration"][1]) == pd.Timestamp(ranges["holdout"][0])
    assert pd.Timestamp(ranges["holdout"][0]) == last_batch
    holdout = pd.read_parquet(path / recorded["holdout_file"])
    in_last_batch = holdout["order_ts"] == last_batch
    assert int(in_last_batch.sum()) == HOLDOUT - SINGLES
    assert (holdout.loc[~in_last_batch, "order_ts"] > last_batch).all()
    assert "Decision: PROMOTE" in output, output[-3000:]
