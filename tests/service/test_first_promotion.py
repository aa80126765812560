"""No ungated promotion: on a fresh store (no production model), ``make promote`` refuses a
candidate trained on shuffled delivery times -- a model that learned nothing -- on the gate's
absolute criteria, where it used to promote it as "first promotion, gate not applied"."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from examples.warehouse_export import order_export
from models.contract import default_contract
from tests.harness.store_commands import run_with_store


def test_make_promote_refuses_a_first_candidate_trained_on_shuffled_labels(tmp_path: Path) -> None:
    orders = order_export(6_000, days=20, seed=11)
    target = default_contract().target.column
    orders[target] = np.random.default_rng(0).permutation(orders[target].to_numpy())
    orders.to_csv(tmp_path / "shuffled.csv", index=False)
    home = tmp_path / "home"
    trained = run_with_store(
        [
            ".venv/bin/python",
            "train.py",
            "--small",
            "--card-dir",
            "",
            "--data",
            str(tmp_path / "shuffled.csv"),
        ],
        home,
    )
    assert trained.returncode == 0, trained.stderr[-3000:]

    promote = run_with_store(["make", "--no-print-directory", "promote"], home)
    output = promote.stdout + promote.stderr
    assert promote.returncode != 0, output[-3000:]
    assert "gate not applied" not in output
    assert "candidate delivery_eta:" in promote.stdout  # which model "the candidate" was
    assert "Absolute criteria (every promotion, with or without production)" in promote.stdout
    assert "Decision: REFUSE (holdout MAE" in promote.stdout, output[-3000:]
    assert "not better than the training mean baseline" in promote.stdout
    assert "refused; production unchanged (none)" in promote.stdout

    (version,) = [v for v in (home / "models" / "delivery_eta").iterdir() if v.is_dir()]
    labels = yaml.safe_load((version / "model.yaml").read_text())["labels"]
    assert (labels["stage"], labels["gate"]) == ("candidate", "refused")
    assert "baselines" in labels["gate_failed"].split(",")
