"""The promotion gate and contracts: a candidate whose contract breaks production's API is refused
(naming the fields and why) unless the break is allowed; a widening passes with a note; each model
is scored through its own contract. Real models in a private model store (``conftest.py``)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import bentoml
import pytest

from models.contract import FeatureContract, default_contract, parse_contract
from models.contract.compat import compare_contracts
from models.promotion import gate, workflow
from models.promotion.decision import Comparison, ModelScore
from models.promotion.holdout import candidate_holdout, holdout_mae
from models.promotion.report import comparison_table
from models.store.artifact import load_artifact
from models.store.stages import CANDIDATE, PRODUCTION
from models.training.config import TrainingConfig
from models.training.release import train_and_register
from operations.promotion import main as promotion_cli

ROOT = Path(__file__).resolve().parents[3]
FAST_LATENCY_CALLS = 200  # the point here is the contract, not the latency


def _default_edited(old: str, new: str) -> FeatureContract:
    text = (ROOT / "models" / "contract" / "default.yaml").read_text()
    assert text.count(old) == 1, old
    return parse_contract(text.replace(old, new))


# The default contract's value field (the one without a cohort, after the entities): narrowed
# to what the synthetic orders hold (<= 400), and the distance widened.
VALUE = default_contract().fields_of_kind("number")[-1]
DISTANCE = default_contract().fields_of_kind("number")[0]
NARROWED = _default_edited("    maximum: 100000\n", "    maximum: 1000\n")
WIDENED = _default_edited("    maximum: 50\n", "    maximum: 60\n")


def _score(mae: float) -> ModelScore:
    return ModelScore(tag="t", stage=None, mae=mae, p50_ms=0.5, p95_ms=1.0, latency_calls=200)


def _comparison(candidate: FeatureContract, allowed: bool) -> Comparison:
    return Comparison(
        candidate=_score(4.0),
        production=_score(4.0),
        holdout_rows=1,
        holdout_source="test",
        latency_runtime="treelite",
        mae_ratio=1.0,
        p95_ratio=1.0,
        mae_ok=True,
        latency_ok=True,
        contract=compare_contracts(default_contract(), candidate),
        api_break_allowed=allowed,
    )


def test_an_api_break_refuses_an_otherwise_passing_candidate_unless_allowed() -> None:
    refused = _comparison(NARROWED, allowed=False)
    assert not refused.passed
    assert refused.decision.startswith(f"REFUSE (API break in {VALUE}")
    assert "--allow-api-break" in refused.decision
    table = comparison_table(refused)
    assert "Contract: breaks production's API -- FAIL" in table
    assert f"API break: {VALUE}: range narrowed from 0..100000 to 0..1000" in table

    allowed = _comparison(NARROWED, allowed=True)
    assert allowed.passed and allowed.decision == "PROMOTE (gate passed)"
    assert "-- allowed (--allow-api-break)" in comparison_table(allowed)


def test_a_widening_passes_with_a_note_and_the_same_contract_says_so() -> None:
    widened = _comparison(WIDENED, allowed=False)
    assert widened.passed
    widening = f"API widening: {DISTANCE}: range widened from 0.1..50 to 0.1..60"
    assert widening in comparison_table(widened)
    same = _comparison(default_contract(), allowed=False)
    assert same.passed and "Contract: the same API as production" in comparison_table(same)


@pytest.fixture(scope="module")
def narrowed_tag(store_home: Path) -> str:
    """The session model's training, with the value field's range narrowed in its contract."""
    return train_and_register(TrainingConfig.small(), stage=CANDIDATE, contract=NARROWED).tag


@pytest.fixture(scope="module")
def widened_tag(store_home: Path) -> str:
    """A little retrained, with the distance range widened in its contract."""
    config = dataclasses.replace(TrainingConfig.small(), max_iter=100, learning_rate=0.12)
    return train_and_register(config, stage=CANDIDATE, contract=WIDENED).tag


def test_make_promote_refuses_a_breaking_candidate_unless_allowed(
    store_home: Path,
    base_tag: str,
    narrowed_tag: str,
    widened_tag: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert workflow.promote(base_tag, latency_calls=FAST_LATENCY_CALLS).promoted  # first

    # The candidate's holdout is rebuilt through its own contract (its fingerprint matches).
    narrowed = load_artifact(narrowed_tag)
    assert narrowed.contract == NARROWED
    holdout = candidate_holdout(narrowed)
    assert holdout_mae(narrowed, holdout) == pytest.approx(
        narrowed.metadata["metrics"]["holdout_mae"], abs=1e-5
    )

    # make promote: refused, naming the field and why; production unchanged.
    code = promotion_cli(
        ["promote", "--tag", narrowed_tag, "--latency-calls", str(FAST_LATENCY_CALLS)]
    )
    said = capsys.readouterr().out
    assert code == 1, said
    assert f"REFUSE (API break in {VALUE}" in said
    assert f"API break: {VALUE}: range narrowed from 0..100000 to 0..1000" in said
    labels = bentoml.models.get(narrowed_tag).info.labels
    assert (labels["stage"], labels["gate"], labels["gate_contract"]) == (
        CANDIDATE,
        "refused",
        "break",
    )
    assert bentoml.models.get(base_tag).info.labels["stage"] == PRODUCTION

    # Allowed explicitly, the break is promoted (trained as production was: accuracy and
    # speed pass the gate).
    code = promotion_cli(
        [
            "promote",
            "--tag",
            narrowed_tag,
            "--latency-calls",
            str(FAST_LATENCY_CALLS),
            "--allow-api-break",
        ]
    )
    said = capsys.readouterr().out
    assert code == 0, said
    assert "Contract: breaks production's API -- allowed (--allow-api-break)" in said
    assert "API break allowed: clients of" in said
    labels = bentoml.models.get(narrowed_tag).info.labels
    assert (labels["stage"], labels["gate_contract"]) == (PRODUCTION, "break-allowed")

    # Back to a wider range (both fields): a widening passes the contract check with a note.
    widened = workflow.promote(widened_tag, latency_calls=FAST_LATENCY_CALLS)
    assert widened.comparison.contract is not None and widened.comparison.contract.compatible
    assert f"API widening: {DISTANCE}" in comparison_table(widened.comparison)
    assert widened.promoted, comparison_table(widened.comparison)
    assert bentoml.models.get(widened_tag).info.labels["gate_contract"] == "widened"


# The value field removed from the contract: a model of four fields.
WITHOUT_VALUE = _default_edited(
    "\n  order_value:\n    kind: number\n    minimum: 0\n    maximum: 100000\n    example: 27.5\n"
    "    monotonic: increasing",
    "",
)


@pytest.fixture(scope="module")
def without_value_tag(store_home: Path) -> str:
    """The session model's training without the value field."""
    return train_and_register(TrainingConfig.small(), stage=CANDIDATE, contract=WITHOUT_VALUE).tag


def test_a_removed_field_is_a_break_and_production_is_scored_through_its_own_contract(
    store_home: Path, base_tag: str, without_value_tag: str
) -> None:
    assert VALUE not in WITHOUT_VALUE.fields
    comparison = gate.compare(without_value_tag, base_tag, latency_calls=FAST_LATENCY_CALLS)
    assert not comparison.passed
    assert comparison.decision.startswith(f"REFUSE (API break in {VALUE}")
    assert f"API break: {VALUE}: removed" in comparison_table(comparison)
    # Each model read the holdout through its own contract: both were scored.
    assert comparison.production is not None and comparison.production.mae is not None
    assert comparison.mae_ratio is not None

    # A holdout without the removed column: production cannot be scored on it. Allowed, the
    # break is promoted on the candidate's accuracy and speed alone, and the note says so.
    holdout = candidate_holdout(load_artifact(without_value_tag)).drop(columns=[VALUE])
    allowed = gate.compare(
        without_value_tag,
        base_tag,
        holdout,
        latency_calls=FAST_LATENCY_CALLS,
        allow_api_break=True,
    )
    assert allowed.production is not None and allowed.production.mae is None
    assert allowed.mae_ratio is None and allowed.mae_ok
    assert any("cannot be scored on this holdout" in note for note in allowed.notes)
    assert "| holdout MAE (min) |" in comparison_table(allowed)
