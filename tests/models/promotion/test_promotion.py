"""Promotion on a real BentoML model store: stages, the promotion gate both ways, rollback.

The module gets its own store seeded with a copy of the session's small model (``conftest.py``
here), so promotions never change what ``delivery_eta:latest`` or the stages mean for the other
tests.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import bentoml
import pytest
import yaml

from models.promotion import gate, workflow
from models.promotion.criteria import LATENCY_TOLERANCE, MAE_TOLERANCE
from models.promotion.decision import Comparison, ModelScore
from models.promotion.holdout import candidate_holdout, holdout_mae
from models.promotion.latency import LATENCY_CALLS
from models.promotion.report import comparison_table
from models.store import stages
from models.store.artifact import MODEL_NAME, load_artifact
from models.store.stages import (
    CANDIDATE,
    PREVIOUS,
    PRODUCTION,
    ROLLED_BACK,
    LifecycleError,
)
from models.training.config import TrainingConfig
from models.training.release import train_and_register
from operations.promotion import main as promotion_cli

ROOT = Path(__file__).resolve().parents[3]
# LATENCY_CALLS (1,000) throughout: a p95 of 200 jittery calls is too noisy.


@pytest.fixture(scope="module")
def worse_tag(store_home: Path) -> str:
    """Deliberately under-trained (5 boosting iterations): much worse MAE."""
    config = dataclasses.replace(TrainingConfig.small(), max_iter=5)
    return train_and_register(config, stage=CANDIDATE).tag


def _stage_on_disk(home: Path, tag: str) -> str:
    name, version = tag.split(":")
    info = yaml.safe_load((home / "models" / name / version / "model.yaml").read_text())
    return str(info["labels"]["stage"])


def _score(mae: float, p95: float) -> ModelScore:
    return ModelScore(tag="t", stage=None, mae=mae, p50_ms=p95 / 2, p95_ms=p95, latency_calls=200)


@pytest.mark.parametrize(
    ("mae", "p95", "passed"),
    [
        (4.08, 1.5, True),  # exactly at both limits (x1.02, x1.5)
        (4.0801, 1.0, False),  # MAE just over 2 % worse
        (3.5, 1.5001, False),  # much better, but too slow
        (3.9, 0.5, True),
    ],
)
def test_gate_limits(mae: float, p95: float, passed: bool) -> None:
    production = _score(4.0, 1.0)
    candidate = _score(mae, p95)
    comparison = Comparison(
        candidate=candidate,
        production=production,
        holdout_rows=1,
        holdout_source="test",
        latency_runtime="treelite",
        mae_ratio=mae / 4.0,
        p95_ratio=p95 / 1.0,
        mae_ok=mae <= MAE_TOLERANCE * 4.0,
        latency_ok=p95 <= LATENCY_TOLERANCE * 1.0,
    )
    assert comparison.passed is passed
    assert comparison.decision.startswith("PROMOTE" if passed else "REFUSE")


def test_find_by_stage_filters_on_labels(store_home: Path, base_tag: str) -> None:
    assert [m.tag for m in stages.find_by_stage(CANDIDATE)] == [base_tag]
    assert stages.find_by_stage(PRODUCTION) == []
    assert stages.current_production() is None
    # Nothing promoted yet: the service would fall back to latest, or refuse if told to.
    assert stages.resolve_serving_tag(None) == f"{MODEL_NAME}:latest"
    assert stages.resolve_serving_tag("delivery_eta:pinned") == "delivery_eta:pinned"
    with pytest.raises(LifecycleError, match="stage=production"):
        stages.resolve_serving_tag(None, fallback_to_latest=False)


def test_holdout_is_reproduced_or_refused(store_home: Path, base_tag: str) -> None:
    artifact = load_artifact(base_tag)
    holdout = candidate_holdout(artifact)
    assert len(holdout) == artifact.metadata["row_counts"]["holdout"]
    # Evaluated on the regenerated holdout, the model scores exactly what training recorded.
    assert holdout_mae(artifact, holdout) == pytest.approx(
        artifact.metadata["metrics"]["holdout_mae"], abs=1e-5
    )
    wrong_seed = {**artifact.metadata["training_config"], "seed": 8}
    tampered = dataclasses.replace(
        artifact, metadata={**artifact.metadata, "training_config": wrong_seed}
    )
    with pytest.raises(LifecycleError, match="cannot reproduce"):
        candidate_holdout(tampered)


def test_gate_refuses_a_worse_candidate_promotes_a_fine_one_and_rollback_restores(
    store_home: Path, base_tag: str, fine_tag: str, worse_tag: str
) -> None:
    # 1. No production yet: the oldest candidate is promoted on the absolute criteria alone.
    first = workflow.promote(base_tag, latency_calls=LATENCY_CALLS)
    assert first.promoted
    assert first.comparison.production is None
    assert first.comparison.absolute is not None and first.comparison.absolute.passed
    assert "first promotion: no production model yet; absolute criteria passed" in (
        comparison_table(first.comparison)
    )
    assert _stage_on_disk(store_home, base_tag) == PRODUCTION

    # 2. The under-trained candidate is refused on MAE; production is untouched.
    refused = workflow.promote(worse_tag, latency_calls=LATENCY_CALLS)
    print("\n" + comparison_table(refused.comparison))
    assert not refused.promoted
    assert not refused.comparison.mae_ok
    assert bentoml.models.get(worse_tag).info.labels.get("gate_failed", "").endswith("mae")
    assert refused.comparison.mae_ratio is not None and refused.comparison.mae_ratio > 1.02
    assert refused.comparison.production is not None
    assert refused.comparison.production.tag == base_tag
    assert "REFUSE (MAE" in comparison_table(refused.comparison)
    assert _stage_on_disk(store_home, base_tag) == PRODUCTION
    assert _stage_on_disk(store_home, worse_tag) == CANDIDATE
    assert bentoml.models.get(worse_tag).info.labels["gate"] == "refused"

    # 3. By default the newest candidate the gate has not refused is chosen: the fine one.
    assert {m.tag for m in stages.find_by_stage(CANDIDATE)} == {worse_tag, fine_tag}
    promoted = workflow.promote(latency_calls=LATENCY_CALLS)
    print("\n" + comparison_table(promoted.comparison))
    assert promoted.promoted, comparison_table(promoted.comparison)
    assert promoted.comparison.candidate.tag == fine_tag
    assert promoted.choice is not None
    assert [m.tag for m, _ in promoted.choice.skipped] == [worse_tag]
    assert promoted.comparison.mae_ok and promoted.comparison.latency_ok
    assert stages.current_production() is not None
    assert stages.current_production().tag == fine_tag  # type: ignore[union-attr]
    assert [m.tag for m in stages.find_by_stage(PREVIOUS)] == [base_tag]
    assert stages.resolve_serving_tag(None) == fine_tag
    # Both models used the same holdout, so the MAEs are comparable.
    assert promoted.comparison.production is not None
    assert promoted.comparison.production.mae == pytest.approx(
        load_artifact(base_tag).metadata["metrics"]["holdout_mae"], abs=1e-5
    )

    # Stages are persisted: model.yaml on disk, and a new process sees the same.
    assert _stage_on_disk(store_home, fine_tag) == PRODUCTION
    assert _stage_on_disk(store_home, base_tag) == PREVIOUS
    script = (
        "import json; from models.store import stages; "
        "print(json.dumps({m.tag: m.stage for m in stages.list_models()}))"
    )
    seen = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={**os.environ, "BENTOML_HOME": str(store_home)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(seen.stdout.strip().splitlines()[-1]) == {
        fine_tag: PRODUCTION,
        base_tag: PREVIOUS,
        worse_tag: CANDIDATE,
    }

    # 4. Rollback restores the replaced production model; the rolled-back one is parked.
    rolled = workflow.rollback()
    assert (rolled.restored, rolled.demoted) == (base_tag, fine_tag)
    assert stages.current_production().tag == base_tag  # type: ignore[union-attr]
    assert _stage_on_disk(store_home, base_tag) == PRODUCTION
    assert _stage_on_disk(store_home, fine_tag) == ROLLED_BACK
    assert load_artifact(base_tag).labels["stage"] == PRODUCTION  # what a server would report

    # 5. History is exhausted: a second rollback is refused rather than guessing.
    with pytest.raises(LifecycleError, match="no previous production model"):
        workflow.rollback()
    # Promoting the current production model again is refused too.
    with pytest.raises(LifecycleError, match="already the production model"):
        workflow.promote(base_tag, latency_calls=LATENCY_CALLS)


def test_cli_status_lists_stages(store_home: Path, base_tag: str) -> None:
    assert promotion_cli(["status"]) == 0
    assert base_tag in stages.status_table()


@pytest.fixture(scope="module")
def file_tag(store_home: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A candidate trained on an order file (another world than the session model's)."""
    from examples.warehouse_export import order_export
    from models.training.from_files import load_file_training_data

    path = tmp_path_factory.mktemp("orders") / "orders.parquet"
    order_export(12_000, days=30, seed=4).to_parquet(path, index=False)
    data = load_file_training_data(path)
    return train_and_register(TrainingConfig.small(), stage=CANDIDATE, data=data).tag


def test_a_file_trained_candidate_is_gated_on_its_stored_holdout(
    store_home: Path, base_tag: str, file_tag: str
) -> None:
    artifact = load_artifact(file_tag)
    holdout = candidate_holdout(artifact)
    assert len(holdout) == artifact.metadata["row_counts"]["holdout"]
    assert holdout_mae(artifact, holdout) == pytest.approx(
        artifact.metadata["metrics"]["holdout_mae"], abs=1e-5
    )
    comparison = gate.compare(file_tag, base_tag, latency_calls=200)
    assert "newest orders of its training file" in comparison.holdout_source
    # The synthetic production model knows none of the file's restaurants or drivers.
    assert comparison.production is not None and comparison.mae_ratio is not None
    assert comparison.mae_ratio < 1.0

    stored = artifact.path / "holdout.parquet"
    original = stored.read_bytes()
    try:
        stored.write_bytes(original[:-16] + bytes(16))
        with pytest.raises(LifecycleError, match="does not match its recorded sha256"):
            candidate_holdout(artifact)
        stored.unlink()
        with pytest.raises(LifecycleError, match=r"has no holdout\.parquet"):
            candidate_holdout(artifact)
    finally:
        stored.write_bytes(original)
