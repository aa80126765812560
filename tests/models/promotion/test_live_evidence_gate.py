"""The promotion gate with live evidence (``--min-shadow-rows``): labelled prediction-log rows where
the candidate shadowed production decide alongside the holdout. A better challenger with enough
rows passes; too few rows, a worse challenger, and rows where the candidate shadowed another
model (or another model shadowed production) refuse. The logs are written by the service's own
SQLite log class, the models are real, in a private model store (``conftest.py``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import bentoml
import numpy as np
import pytest

from models.promotion import gate, workflow
from models.promotion.criteria import MAE_TOLERANCE
from models.promotion.decision import Comparison, LiveEvidence, ModelScore
from models.promotion.latency import LATENCY_CALLS
from models.promotion.live_builder import LiveComparisonBuilder, ScoredBlock
from models.promotion.live_comparison import LiveComparison
from models.promotion.report import comparison_table
from models.store import stages
from models.store.stages import CANDIDATE, PRODUCTION
from operations.compare_live import compare_live
from operations.promotion import main as promotion_cli
from prediction_log import SQLitePredictionLog
from prediction_log.location import LogLocation
from tests.harness.shadow_logs import LoggedRequest, intervals, write_requests

FAST_LATENCY_CALLS = 200  # where the test's point is the live evidence, not the latency


def _requests(
    champion: str, challenger: str, rows: int, champion_error: float, challenger_error: float
) -> list[LoggedRequest]:
    """``rows`` labelled rows in requests of 10: each model off by its error on every row."""
    truth = np.random.default_rng(rows).uniform(10, 60, rows)
    return [
        LoggedRequest(
            champion,
            intervals(part + champion_error, 8.0),
            part,
            challenger,
            intervals(part - challenger_error, 8.0),
        )
        for part in np.array_split(truth, max(rows // 10, 1))
    ]


async def _log(path: Path, *groups: list[LoggedRequest]) -> Callable[[], LiveComparison]:
    """Write the requests to a SQLite log at ``path``; the reader the gate is handed."""
    await write_requests(
        SQLitePredictionLog(path, retention_s=6 * 3600), [r for g in groups for r in g]
    )
    return lambda: compare_live(LogLocation("sqlite", path=path), None)


# -- the rule, without models -----------------------------------------------------------------


def _evidence(rows: int, champion_mae: float, challenger_mae: float, required: int) -> LiveEvidence:
    builder = LiveComparisonBuilder()
    truth = np.linspace(10, 60, rows)
    builder.add_blocks(
        [
            ScoredBlock(
                "delivery_eta:prod",
                intervals(truth + champion_mae, 5.0),
                truth,
                shadow_version="delivery_eta:cand",
                shadow_outputs=intervals(truth + challenger_mae, 5.0),
            )
        ]
    )
    pair = builder.result(None, "test").pair("delivery_eta:prod", "delivery_eta:cand")
    return LiveEvidence(required, "test window", pair)


def _comparison(live: LiveEvidence | None) -> Comparison:
    score = ModelScore(tag="t", stage=None, mae=4.0, p50_ms=0.2, p95_ms=0.4, latency_calls=200)
    return Comparison(
        candidate=score,
        production=score,
        holdout_rows=1000,
        holdout_source="test",
        latency_runtime="treelite",
        mae_ratio=1.0,
        p95_ratio=1.0,
        mae_ok=True,
        latency_ok=True,
        live=live,
    )


@pytest.mark.parametrize(
    ("rows", "challenger_mae", "passed", "says"),
    [
        (100, 4.08, True, "live shadow MAE (100 labelled rows)"),  # exactly at the margin
        (100, 4.0801, False, "REFUSE (live shadow MAE over the gate)"),
        (100, 2.0, True, "PROMOTE (gate passed on the holdout and on live shadow evidence)"),
        (99, 2.0, False, "too few live shadow rows: 99 labelled rows"),
    ],
)
def test_the_live_rule_applies_the_holdout_margin(
    rows: int, challenger_mae: float, passed: bool, says: str
) -> None:
    live = _evidence(rows, 4.0, challenger_mae, required=100)
    comparison = _comparison(live)
    assert comparison.passed is passed
    table = comparison_table(comparison)
    assert says in table, table
    assert "| live shadow labelled rows |" in table
    assert "Live shadow: test window" in table
    assert MAE_TOLERANCE == 1.02  # the margin the parametrisation was written for


def test_without_live_evidence_the_gate_is_unchanged() -> None:
    comparison = _comparison(None)
    assert comparison.passed and comparison.decision == "PROMOTE (gate passed)"
    assert comparison.evidence == "holdout MAE and p95 latency (1000 orders)"
    assert "live shadow" not in comparison_table(comparison)


def test_too_few_rows_name_both_numbers_and_no_rows_at_all_count_zero() -> None:
    none = LiveEvidence(500, "w", None)
    comparison = _comparison(none)
    assert not comparison.passed
    assert comparison.decision == (
        "REFUSE (too few live shadow rows: 0 labelled rows where the candidate was the "
        "challenger of production, --min-shadow-rows requires 500)"
    )
    assert "no labelled rows" in comparison_table(comparison)


def test_compare_and_promote_take_the_rows_and_the_reader_together() -> None:
    with pytest.raises(ValueError, match="go together"):
        gate.compare("delivery_eta:x", None, min_shadow_rows=10)
    with pytest.raises(ValueError, match="go together"):
        workflow.promote("delivery_eta:x", min_shadow_rows=10)


# -- on a real model store --------------------------------------------------------------------


async def test_a_first_promotion_notes_the_live_evidence_is_not_applied(
    store_home: Path, base_tag: str, tmp_path: Path
) -> None:
    read = await _log(tmp_path / "p.sqlite3", _requests("delivery_eta:x", base_tag, 50, 3, 1))
    result = workflow.promote(
        base_tag, latency_calls=FAST_LATENCY_CALLS, min_shadow_rows=10, read_live=read
    )
    assert result.promoted and result.comparison.live is None
    assert "live shadow evidence not applied" in comparison_table(result.comparison)
    assert stages.current_production().tag == base_tag  # type: ignore[union-attr]


async def test_too_few_rows_refuse_naming_the_count_and_the_requirement(
    store_home: Path,
    base_tag: str,
    fine_tag: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "p.sqlite3"
    await _log(path, _requests(base_tag, fine_tag, 40, champion_error=3, challenger_error=1))
    monkeypatch.setenv("DELIVERY_ETA_PREDICTION_LOG_PATH", str(path))  # the service's log
    args = ["promote", "--tag", fine_tag, "--latency-calls", str(FAST_LATENCY_CALLS)]

    code = promotion_cli([*args, "--min-shadow-rows", "100", "--shadow-hours", "1"])

    said = capsys.readouterr().out
    print("\n" + said)
    assert code == 1
    assert (
        "too few live shadow rows: 40 labelled rows where the candidate was the challenger of "
        "production, --min-shadow-rows requires 100" in said
    )
    assert "| live shadow labelled rows | 40 | | | >= 100 | FAIL |" in said
    assert "| live shadow MAE (min) | 1.0000 | 3.0000 |" in said  # shown, not judged
    assert stages.current_production().tag == base_tag  # type: ignore[union-attr]
    labels = bentoml.models.get(fine_tag).info.labels
    assert (labels["stage"], labels["gate"], labels["gate_live_rows"]) == (
        CANDIDATE,
        "refused",
        "40",
    )


async def test_a_worse_challenger_is_refused_on_the_live_evidence(
    store_home: Path, base_tag: str, fine_tag: str, tmp_path: Path
) -> None:
    read = await _log(tmp_path / "p.sqlite3", _requests(base_tag, fine_tag, 200, 3.0, 3.2))
    result = workflow.promote(
        fine_tag, latency_calls=FAST_LATENCY_CALLS, min_shadow_rows=100, read_live=read
    )
    table = comparison_table(result.comparison)
    print("\n" + table)
    live = result.comparison.live
    assert not result.promoted
    assert result.comparison.mae_ok  # the holdout alone would not have refused it
    assert live is not None and live.rows == 200 and live.enough_rows and not live.mae_ok
    assert "live shadow MAE over the gate" in result.comparison.decision
    assert "MAE difference (candidate - production) +0.200 min, 95 % CI [+0.200, +0.200]" in table
    assert stages.current_production().tag == base_tag  # type: ignore[union-attr]


async def test_rows_where_the_candidate_shadowed_another_model_do_not_count(
    store_home: Path, base_tag: str, fine_tag: str, tmp_path: Path
) -> None:
    read = await _log(
        tmp_path / "p.sqlite3",
        _requests("delivery_eta:another", fine_tag, 300, 3, 1),  # the candidate, but not vs prod
        _requests(base_tag, "delivery_eta:another", 300, 3, 1),  # prod, but another challenger
        _requests(fine_tag, base_tag, 300, 3, 1),  # the two, the other way round
    )
    result = workflow.promote(
        fine_tag, latency_calls=FAST_LATENCY_CALLS, min_shadow_rows=100, read_live=read
    )
    assert not result.promoted
    assert result.comparison.live is not None and result.comparison.live.rows == 0
    assert "too few live shadow rows: 0 labelled rows" in result.comparison.decision


def test_the_command_line_refuses_a_log_it_cannot_read(
    store_home: Path,
    fine_tag: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Options that cannot go together: tests/operations/test_promotion_cli.py.
    monkeypatch.setenv("DELIVERY_ETA_PREDICTION_LOG_PATH", str(tmp_path / "missing.sqlite3"))
    code = promotion_cli(["promote", "--tag", fine_tag, "--min-shadow-rows", "10"])
    err = capsys.readouterr().err
    assert code == 2
    assert "cannot read the live shadow evidence: prediction log" in err and "does not exist" in err


# Last: it makes the candidate production.
async def test_a_better_challenger_with_enough_rows_is_promoted(
    store_home: Path, base_tag: str, fine_tag: str, tmp_path: Path
) -> None:
    read = await _log(tmp_path / "p.sqlite3", _requests(base_tag, fine_tag, 200, 3.0, 2.5))
    result = workflow.promote(
        fine_tag, latency_calls=LATENCY_CALLS, min_shadow_rows=150, read_live=read
    )
    table = comparison_table(result.comparison)
    print("\n" + table)
    assert result.promoted, table
    assert "Evidence: absolute criteria, holdout MAE and p95 latency" in table
    assert "and live shadow MAE (200 labelled rows)" in table
    assert "| live shadow MAE (min) | 2.5000 | 3.0000 | 0.833 | <= 1.02 | pass |" in table
    assert stages.current_production().tag == fine_tag  # type: ignore[union-attr]
    labels = bentoml.models.get(fine_tag).info.labels
    assert (labels["stage"], labels["gate_live_rows"], labels["gate_live_mae_ratio"]) == (
        PRODUCTION,
        "200",
        "0.8333",
    )
