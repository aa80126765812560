"""Two ``make serve`` instances of one user, each with its own BENTOML_HOME and otherwise the
default prediction-log settings, keep separate prediction logs: a label reaches only the
instance that made the prediction. Both name their log as they start, and the old shared
default (``~/.local/state/...``, left by an older release) is named, not moved."""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

import bentoml
import httpx

from models.contract import default_contract
from models.contract.bodies import example_order
from prediction_log import split_prediction_id
from tests.harness.local_server import ROOT, free_port, stop_process_group, wait_ready


def _home_with_the_model(home: Path, registered: Any) -> Path:
    """A BENTOML_HOME whose store holds a copy of the session's model (so ``make serve``'s
    ``train.py --if-missing`` finds it and skips training)."""
    source = Path(bentoml.models.get(registered.tag).path)
    models = home / "models" / source.parent.name
    shutil.copytree(source, models / source.name)
    (models / "latest").write_text(source.name)
    return home


def _logged_ids(path: Path) -> set[str]:
    """The prediction ids of the blocks in the SQLite log at ``path`` (read-only)."""
    if not path.exists():
        return set()
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return {key for (key,) in db.execute("SELECT block_key FROM prediction_blocks")}
    except sqlite3.OperationalError:  # not created yet
        return set()
    finally:
        db.close()


def _block_key(prediction_id: str) -> str:
    split = split_prediction_id(prediction_id)
    assert split is not None, prediction_id
    return split[0]


def test_two_instances_keep_their_own_prediction_logs(registered: Any, tmp_path: Path) -> None:
    user = tmp_path / "user"  # the one user both instances run as: never the real ~
    old_log = user / ".local" / "state" / "delivery-eta" / "predictions.sqlite3"
    old_log.parent.mkdir(parents=True)
    old_log.write_bytes(b"")  # what an older release left there
    homes = {name: _home_with_the_model(tmp_path / f"bentoml-{name}", registered) for name in "ab"}
    logs = {name: home / "delivery-eta" / "predictions.sqlite3" for name, home in homes.items()}
    # The caller's environment without any DELIVERY_ETA_* (tests/conftest.py drops them): the
    # prediction log's settings are the defaults. Unrelated to the log, to start and stop
    # fast: one worker each, and no drain at stop (nobody routes to them).
    base = {k: v for k, v in os.environ.items() if not k.startswith("DELIVERY_ETA_")}
    base |= {"DELIVERY_ETA_WORKERS": "1", "DELIVERY_ETA_SHUTDOWN_DRAIN_S": "0"}
    servers: dict[str, subprocess.Popen[bytes]] = {}
    urls: dict[str, str] = {}
    outputs = contextlib.ExitStack()
    try:
        for name, home in homes.items():
            port = free_port()
            env = {**base, "HOME": str(user), "BENTOML_HOME": str(home), "PORT": str(port)}
            servers[name] = subprocess.Popen(
                ["make", "--no-print-directory", "serve"],
                cwd=ROOT,
                env=env,
                stdout=outputs.enter_context((tmp_path / f"serve-{name}.log").open("wb")),
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            urls[name] = f"http://127.0.0.1:{port}"
        for name, url in urls.items():
            wait_ready(url, 120, servers[name])

        with httpx.Client(timeout=30) as client:
            order = example_order(default_contract())  # the session model's contract
            predicted = client.post(f"{urls['a']}/v1/predict", json=order)
            assert predicted.status_code == 200, predicted.text
            prediction_id = predicted.json()["prediction_id"]
            label = {"prediction_id": prediction_id, "actual_delivery_time_min": 31.0}
            # The label to A first, retried while the write queue has not flushed (100 ms), so
            # that B's answer cannot be a timing accident: a shared log would say "duplicate".
            deadline = time.monotonic() + 10
            while (here := client.post(f"{urls['a']}/v1/feedback", json=label)).status_code == 404:
                assert time.monotonic() < deadline, "the prediction never reached A's log"
                time.sleep(0.1)
            elsewhere = client.post(f"{urls['b']}/v1/feedback", json=label)

        assert here.status_code == 200 and here.json()["status"] == "joined", here.text
        assert elsewhere.status_code == 404, elsewhere.text
        assert _block_key(prediction_id) in _logged_ids(logs["a"])  # each in its BENTOML_HOME
        assert logs["b"].exists() and _block_key(prediction_id) not in _logged_ids(logs["b"])
    finally:
        for proc in servers.values():
            stop_process_group(proc)
        outputs.close()

    for name in homes:
        said = (tmp_path / f"serve-{name}.log").read_text(errors="replace")
        assert "skipping training" in said  # the copied model served: nothing trained
        assert f"logging predictions to the sqlite log {logs[name]}" in said, said[-3000:]
        assert f"the old default prediction log {old_log} still exists" in said
        assert f"DELIVERY_ETA_PREDICTION_LOG_PATH={old_log}" in said
    assert old_log.read_bytes() == b""  # named, never moved nor written
    assert sorted(p.name for p in old_log.parent.iterdir()) == ["predictions.sqlite3"]
