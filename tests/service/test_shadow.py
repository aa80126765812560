"""Shadow inference on the real server: a challenger scores the same requests off the response
path; labels then score both, and a worse challenger shows worse. Its fraction, its failures and
its start-up checks never touch a client's answer.
"""

from __future__ import annotations

import dataclasses
import os
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from models.cohorts import Cohorts
from models.contract import default_contract
from operations.compare_live import compare_live
from prediction_log.location import LogLocation
from tests.harness.local_server import ROOT, LocalServer, local_server
from tests.harness.model_copies import copy_model
from tests.service.test_startup import _refusal, _serve

ORDERS = 240  # 200 in one batch request, 40 single ones
FAULTS = Path(__file__).resolve().parents[1] / "harness" / "faults"


@pytest.fixture(scope="module")
def worse(registered, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A deliberately worse model (3 boosting rounds instead of 120), registered as the newest
    candidate: the challenger of these tests."""
    from models.training.config import TrainingConfig
    from models.training.release import train_and_register

    config = dataclasses.replace(TrainingConfig.small(), max_iter=3)
    return train_and_register(config, stage="candidate", card_dir=tmp_path_factory.mktemp("card"))


def _orders(registered: Any) -> tuple[list[dict[str, Any]], np.ndarray, np.ndarray]:
    """Holdout orders as requests, their actual minutes, and the champion's offline outputs."""
    holdout = registered.result.holdout.head(ORDERS)
    orders = [
        {
            "restaurant_id": row.restaurant_id,
            "driver_id": row.driver_id,
            "distance_km": float(row.distance_km),
            "is_peak_hour": int(row.is_peak_hour),
            "order_value": float(row.order_value),
        }
        for row in holdout.itertuples()
    ]
    offline = holdout[["predicted", "lower", "upper"]].to_numpy()
    return orders, holdout["delivery_time_minutes"].to_numpy(), offline


def _predict_all(client: httpx.Client, orders: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """200 orders in one batch request, then the rest one by one; every answer must be 200."""
    batch = client.post("/v1/predict/batch", json={"orders": orders[:200]})
    assert batch.status_code == 200, batch.text
    answers = list(batch.json()["predictions"])
    for order in orders[200:]:
        single = client.post("/v1/predict", json=order)
        assert single.status_code == 200, single.text
        answers.append(single.json())
    return answers


def _served(answers: list[dict[str, Any]]) -> np.ndarray:
    return np.array(
        [
            [
                a["predicted_delivery_time_min"],
                a["confidence_interval_lower"],
                a["confidence_interval_upper"],
            ]
            for a in answers
        ]
    )


def _feedback(client: httpx.Client, answers: list[dict[str, Any]], actuals: np.ndarray) -> None:
    """Every label, retried while it is still on its way to the log (another worker's queue)."""
    for answer, actual in zip(answers, actuals, strict=True):
        body = {"prediction_id": answer["prediction_id"], "actual_delivery_time_min": float(actual)}
        for _ in range(50):
            response = client.post("/v1/feedback", json=body)
            if response.status_code != 503:  # "not yet": made moments ago, still on its way
                break
            time.sleep(0.1)
        assert response.status_code == 200, response.text


def _metric(client: httpx.Client, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    total = 0.0
    for line in client.get("/metrics").text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        series, value = line.rsplit(" ", 1)
        if all(f'{key}="{val}"' in series for key, val in labels.items()):
            total += float(value)
    return total


def _logged(server: LocalServer) -> list[tuple[str | None, int]]:
    """(shadow_version, rows) of every block in the server's SQLite prediction log."""
    with sqlite3.connect(server.prediction_log_path) as db:
        return db.execute("SELECT shadow_version, rows FROM prediction_blocks").fetchall()


def _shadow_server(
    tmp_path_factory: pytest.TempPathFactory, registered: Any, **env: str
) -> Iterator[LocalServer]:
    workdir = tmp_path_factory.mktemp("shadow")
    settings = {"DELIVERY_ETA_MODEL_TAG": registered.tag, **env}
    with local_server(workdir / "server.log", env=settings) as running:
        yield running


@pytest.fixture(scope="module")
def shadowed(registered, worse, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:  # type: ignore[no-untyped-def]
    """The session's model serving, the worse one in the shadow on every request."""
    yield from _shadow_server(tmp_path_factory, registered, DELIVERY_ETA_SHADOW_MODEL_TAG=worse.tag)


def test_a_worse_challenger_is_shown_worse_on_the_same_labelled_requests(
    shadowed: LocalServer, registered, worse
) -> None:  # type: ignore[no-untyped-def]
    orders, actuals, offline = _orders(registered)
    with httpx.Client(base_url=shadowed.url, timeout=30) as client:
        answers = _predict_all(client, orders)
        # Clients get the champion's answers, exactly.
        np.testing.assert_allclose(_served(answers), offline, rtol=0, atol=1e-6)
        assert {a["model_version"] for a in answers} == {registered.tag}
        _feedback(client, answers, actuals)

        health = client.get("/health").json()
        assert health["shadow"]["model_version"] == worse.tag
        assert _metric(client, "delivery_eta_shadow_rows_total", outcome="scored") == ORDERS
        assert _metric(client, "delivery_eta_shadow_rows_total", outcome="failed") == 0
        labelled = {}
        for role, tag in (("champion", registered.tag), ("challenger", worse.tag)):
            labels = {"model_version": tag, "role": role}
            count = _metric(client, "delivery_eta_online_absolute_error_minutes_count", **labels)
            total = _metric(client, "delivery_eta_online_absolute_error_minutes_sum", **labels)
            labelled[role] = (count, total / count)
            # Both models' answers are measured by cohort too, on the same labels.
            assert (
                _metric(client, "delivery_eta_cohort_online_absolute_error_minutes_count", **labels)
                == 3 * ORDERS
            )  # each row in one cohort of each of the 3 dimensions
            assert _metric(client, "delivery_eta_model_inference_seconds_count", **labels) > 0
        assert labelled["champion"][0] == labelled["challenger"][0] == ORDERS
        champion_mae, challenger_mae = labelled["champion"][1], labelled["challenger"][1]
        offline_mae = float(np.mean(np.abs(actuals - offline[:, 0])))
        assert abs(champion_mae - offline_mae) < 1e-6
        assert challenger_mae > 1.3 * champion_mae, labelled
        assert _metric(client, "delivery_eta_shadow_absolute_difference_minutes_count") == ORDERS
        # 240 orders of all kinds made no label value outside the fixed sets.
        text = client.get("/metrics").text
        cohorts = Cohorts(default_contract()).names  # the served model's contract's cohorts
        assert set(re.findall(r'cohort="([^"]*)"', text)) <= set(cohorts)
        assert set(re.findall(r'role="([^"]*)"', text)) == {"champion", "challenger"}
        assert set(re.findall(r'model_version="([^"]*)"', text)) == {registered.tag, worse.tag}

    # Every block carries the challenger's answers.
    logged = _logged(shadowed)
    assert sum(rows for _, rows in logged) == ORDERS
    assert {version for version, _ in logged} == {worse.tag}

    # The live comparison from the log says the same, with a confidence interval.
    comparison = compare_live(LogLocation("sqlite", path=shadowed.prediction_log_path), hours=1)
    pair = comparison.pair(registered.tag, worse.tag)
    assert pair is not None and pair.labelled_shadowed_rows == ORDERS
    assert pair.champion.mae == pytest.approx(champion_mae, abs=1e-6)
    assert pair.challenger.mae == pytest.approx(challenger_mae, abs=1e-6)
    assert pair.mae_difference.significant and pair.mae_difference.ci_low > 0
    # ... and so does `make compare`'s command, reading the log the service's settings name.
    env = {**os.environ, "DELIVERY_ETA_PREDICTION_LOG_PATH": str(shadowed.prediction_log_path)}
    shown = subprocess.run(
        [sys.executable, "-m", "operations.compare_live", "--hours", "1"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shown.returncode == 0, shown.stderr
    assert f"{registered.tag} (champion) vs {worse.tag} (challenger)" in shown.stdout
    assert "challenger worse" in shown.stdout


def test_fraction_zero_does_no_shadow_work(
    registered, worse, tmp_path_factory: pytest.TempPathFactory
) -> None:  # type: ignore[no-untyped-def]
    orders, _, offline = _orders(registered)
    # "candidate" resolves to the newest candidate: the worse model, registered last.
    for server in _shadow_server(
        tmp_path_factory,
        registered,
        DELIVERY_ETA_SHADOW_MODEL_TAG="candidate",
        DELIVERY_ETA_SHADOW_FRACTION="0",
    ):
        with httpx.Client(base_url=server.url, timeout=30) as client:
            assert client.get("/health").json()["shadow"]["model_version"] == worse.tag
            answers = _predict_all(client, orders)
            np.testing.assert_allclose(_served(answers), offline, rtol=0, atol=1e-6)
            time.sleep(0.3)  # past the shadow's interval: it would have run by now
            assert (
                _metric(client, "delivery_eta_shadow_rows_total", outcome="not_selected") == ORDERS
            )
            assert _metric(client, "delivery_eta_shadow_rows_total", outcome="scored") == 0
            inference = "delivery_eta_model_inference_seconds_count"
            assert _metric(client, inference, role="challenger") == 0
            assert _metric(client, inference, role="champion") > 0
        assert {version for version, _ in _logged(server)} == {None}


def test_a_raising_challenger_never_changes_an_answer_and_is_counted(
    registered, worse, tmp_path_factory: pytest.TempPathFactory
) -> None:  # type: ignore[no-untyped-def]
    orders, actuals, offline = _orders(registered)
    fault = {
        "PYTHONPATH": os.pathsep.join([str(FAULTS), str(ROOT)]),
        "TEST_FAULT_RAISING_MODEL_TAG": worse.tag,
    }
    for server in _shadow_server(
        tmp_path_factory, registered, DELIVERY_ETA_SHADOW_MODEL_TAG=worse.tag, **fault
    ):
        with httpx.Client(base_url=server.url, timeout=30) as client:
            answers = _predict_all(client, orders)
            np.testing.assert_allclose(_served(answers), offline, rtol=0, atol=1e-6)
            _feedback(client, answers, actuals)  # labels still join: the blocks were logged
            assert _metric(client, "delivery_eta_shadow_rows_total", outcome="failed") == ORDERS
            assert _metric(client, "delivery_eta_shadow_rows_total", outcome="scored") == 0
            errors = "delivery_eta_online_absolute_error_minutes_count"
            assert _metric(client, errors, role="champion") == ORDERS
            assert _metric(client, errors, role="challenger") == 0
            assert client.get("/health").json()["status"] == "ok"
        assert {version for version, _ in _logged(server)} == {None}
        assert "injected fault" in server.log()  # said once, rate-limited, not per request


def test_a_missing_or_absent_challenger_refuses_to_start(registered) -> None:  # type: ignore[no-untyped-def]
    line = _refusal(
        _serve(
            {
                "DELIVERY_ETA_MODEL_TAG": registered.tag,
                "DELIVERY_ETA_SHADOW_MODEL_TAG": "delivery_eta:nosuchversion",
            }
        )
    )
    assert "shadow model (DELIVERY_ETA_SHADOW_MODEL_TAG)" in line
    assert "not in the model store" in line


def test_a_challenger_not_matching_its_metadata_refuses_to_start(
    registered, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    tampered, folder = copy_model(registered, tmp_path, "shadowbad")
    with (folder / "model.joblib").open("ab") as handle:
        handle.write(b"corrupted")
    line = _refusal(
        _serve(
            {
                "DELIVERY_ETA_MODEL_TAG": registered.tag,
                "DELIVERY_ETA_SHADOW_MODEL_TAG": tampered,
            }
        )
    )
    assert "shadow model (DELIVERY_ETA_SHADOW_MODEL_TAG)" in line and "sha256" in line
