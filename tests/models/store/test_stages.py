"""One meaning of "the candidate" for the shadow and for promote: the newest stage=candidate
model the gate has not refused, with the newer refused ones named and why."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from models.store import stages
from models.store.artifact import load_artifact
from models.store.stages import (
    CANDIDATE,
    PRODUCTION,
    LifecycleError,
    StoredModel,
    newest_candidate,
    resolve_challenger,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _model(tag: str, minutes: int, **labels: str) -> StoredModel:
    return StoredModel(
        tag=tag,
        labels={"stage": CANDIDATE, **labels},
        creation_time=T0 + timedelta(minutes=minutes),
        path=Path("/nonexistent") / tag,
    )


REFUSED_NEWEST = _model(
    "delivery_eta:refused2",
    30,
    gate="refused",
    gate_checked_at="20260101T003100.000000Z",
    gate_failed="mae",
    gate_compared_with="delivery_eta:prod",
    gate_mae_ratio="1.0800",
)
REFUSED_OLDER = _model(
    "delivery_eta:refused1",
    20,
    gate="refused",
    gate_checked_at="20260101T002100.000000Z",
    gate_failed="coverage,baselines",
    gate_holdout_coverage="0.8460",
)
UNTESTED = _model("delivery_eta:untested", 10)
OLDEST = _model("delivery_eta:oldest", 0)
PROD = StoredModel(
    "delivery_eta:prod", {"stage": PRODUCTION}, T0 + timedelta(minutes=40), Path("/x")
)


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> list[StoredModel]:
    models = [OLDEST, REFUSED_NEWEST, PROD, UNTESTED, REFUSED_OLDER]
    monkeypatch.setattr(
        stages, "list_models", lambda: sorted(models, key=lambda m: m.creation_time, reverse=True)
    )
    return models


def test_the_candidate_is_the_newest_not_refused_and_the_skipped_are_named(
    store: list[StoredModel],
) -> None:
    choice = newest_candidate()
    assert choice.tag == UNTESTED.tag
    assert [m.tag for m, _ in choice.skipped] == [REFUSED_NEWEST.tag, REFUSED_OLDER.tag]
    lines = choice.describe().splitlines()
    assert lines[0] == (
        "candidate delivery_eta:untested: the newest stage=candidate model the gate has not refused"
    )
    assert lines[1] == (
        "skipped delivery_eta:refused2 (gate=refused at 20260101T003100.000000Z, failed mae, "
        "against delivery_eta:prod, MAE ratio 1.0800)"
    )
    assert lines[2] == (
        "skipped delivery_eta:refused1 (gate=refused at 20260101T002100.000000Z, failed "
        "coverage,baselines, coverage 0.8460)"
    )


def test_shadow_and_promote_resolve_the_same_model(store: list[StoredModel]) -> None:
    shadow = resolve_challenger("candidate")
    assert shadow.tag == newest_candidate().tag == UNTESTED.tag
    assert shadow.reason.startswith(
        "DELIVERY_ETA_SHADOW_MODEL_TAG=candidate: the newest stage=candidate model the gate has "
        "not refused; skipped delivery_eta:refused2 (gate=refused at"
    )
    # A named tag is shadowed as given, refused or not.
    named = resolve_challenger(REFUSED_NEWEST.tag)
    assert (named.tag, named.reason) == (
        REFUSED_NEWEST.tag,
        "DELIVERY_ETA_SHADOW_MODEL_TAG names it",
    )


def test_only_refused_candidates_is_an_error_naming_them(
    store: list[StoredModel], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stages, "list_models", lambda: [REFUSED_NEWEST, PROD, REFUSED_OLDER])
    with pytest.raises(LifecycleError) as raised:
        newest_candidate()
    assert str(raised.value) == (
        "no stage=candidate model the gate has not refused (2 refused by the gate, "
        "newest delivery_eta:refused2: name a tag to use one anyway); train one: make train"
    )
    with pytest.raises(LifecycleError, match=r"^DELIVERY_ETA_SHADOW_MODEL_TAG=candidate, but no "):
        resolve_challenger("candidate")
    monkeypatch.setattr(stages, "list_models", lambda: [])
    with pytest.raises(
        LifecycleError, match=r"^no stage=candidate model the gate has not refused; "
    ):
        newest_candidate()


def test_the_service_logs_the_challenger_it_resolved(
    registered, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:  # type: ignore[no-untyped-def]
    """serving.startup resolves "candidate" through the same function and says what it chose."""
    from serving.settings import ServiceSettings, ShadowSettings
    from serving.startup import load_shadow_model

    real = _model(str(registered.tag), 10)
    monkeypatch.setattr(stages, "list_models", lambda: [REFUSED_NEWEST, real])
    logger = logging.getLogger("serving.startup")
    logger.addHandler(caplog.handler)  # the service's loggers do not propagate
    monkeypatch.setattr(logger, "level", logging.INFO)
    try:
        served = load_artifact(registered.tag)
        challenger = load_shadow_model(
            ServiceSettings(shadow=ShadowSettings(model_tag="candidate")), served
        )
    finally:
        logger.removeHandler(caplog.handler)
    assert challenger is not None and challenger.tag == registered.tag
    # One line (twice in caplog when the logger also propagates to its handler).
    (message,) = {r.getMessage() for r in caplog.records if r.name == "serving.startup"}
    assert message.startswith(f"shadow challenger {registered.tag}: DELIVERY_ETA_SHADOW_MODEL_TAG")
    assert "skipped delivery_eta:refused2 (gate=refused at 20260101T003100.000000Z" in message
