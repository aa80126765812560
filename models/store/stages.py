"""Model stages in the BentoML model store: which version is candidate, production, previous.

``train.py`` registers every run as a new version of ``delivery_eta`` labelled
``stage=candidate``; ``models.promotion`` moves versions between stages by rewriting the
``stage`` label (BentoML 1.4 tags cannot select by label, so stages are found by listing
versions and filtering labels):

    candidate --promote (gate passed, or no production yet)--> production
    production --replaced by a promotion--> previous          (history, newest first)
    production --rollback--> rolled_back ; newest previous --rollback--> production

The service asks this module which tag to serve (:func:`resolve_serving_tag`) and, with a
shadow, which tag to shadow (:func:`resolve_challenger`).

"The candidate" has one meaning, for the shadow (``DELIVERY_ETA_SHADOW_MODEL_TAG=candidate``) and
for ``make promote`` alike (:func:`newest_candidate`): the newest ``stage=candidate`` model the
gate has not refused. A refused model is never shadowed or re-gated by default -- it only returns
by naming its tag -- so the shadow collects live evidence for exactly the model promote will gate
next.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import bentoml

from framework_internals import write_model_labels
from models.store.artifact import MODEL_NAME

STAGE = "stage"
CANDIDATE = "candidate"
PRODUCTION = "production"
PREVIOUS = "previous"
ROLLED_BACK = "rolled_back"


class LifecycleError(RuntimeError):
    """The requested lifecycle step is impossible (no candidate, nothing to roll back, ...)."""


@dataclass(frozen=True)
class StoredModel:
    """One version in the model store, with its labels as they are on disk."""

    tag: str
    labels: dict[str, str]
    creation_time: datetime
    path: Path

    @property
    def stage(self) -> str | None:
        return self.labels.get(STAGE)


# --------------------------------------------------------------------------- store queries


def list_models() -> list[StoredModel]:
    """Every version of ``delivery_eta`` in the store, newest first ([] for an empty store)."""
    try:
        stored = bentoml.models.list(MODEL_NAME)
    except bentoml.exceptions.NotFound:  # BentoML raises, rather than return [], on a new store
        return []
    models = [
        StoredModel(
            tag=str(model.tag),
            labels=dict(model.info.labels),
            creation_time=model.info.creation_time,
            path=Path(model.path),
        )
        for model in stored
    ]
    return sorted(models, key=lambda m: (m.creation_time, m.tag), reverse=True)


def find_by_stage(stage: str) -> list[StoredModel]:
    """Versions whose ``stage`` label is ``stage``.

    Newest first by creation time; for ``previous`` the most recently demoted production model
    comes first (that is the one a rollback restores).
    """
    found = [m for m in list_models() if m.stage == stage]
    if stage == PREVIOUS:
        found.sort(key=lambda m: (int(m.labels.get("promotion_seq", "0")), m.creation_time))
        found.reverse()
    return found


def current_production() -> StoredModel | None:
    """The model labelled ``stage=production`` (the most recently promoted if, wrongly, several)."""
    found = find_by_stage(PRODUCTION)
    found.sort(key=lambda m: (int(m.labels.get("promotion_seq", "0")), m.creation_time))
    return found[-1] if found else None


def resolve_serving_tag(configured: str | None, *, fallback_to_latest: bool = True) -> str:
    """The tag the service should serve.

    A configured tag (``DELIVERY_ETA_MODEL_TAG``) is served as given -- a pin wins. Otherwise the
    production-labelled model; if nothing has been promoted yet, ``delivery_eta:latest`` when
    ``fallback_to_latest`` (a fresh checkout serves what ``make train`` just registered), else
    :class:`LifecycleError`.
    """
    if configured:
        return configured
    production = current_production()
    if production is not None:
        return production.tag
    if fallback_to_latest:
        return f"{MODEL_NAME}:latest"
    raise LifecycleError("no model labelled stage=production; run `make promote`")


NEWEST_CANDIDATE = "candidate"
"""The challenger setting's value for "the candidate" (:func:`newest_candidate`)."""
REFUSED = "refused"
"""The ``gate`` label of a candidate the promotion gate refused."""
CANDIDATE_MEANING = "the newest stage=candidate model the gate has not refused"


@dataclass(frozen=True)
class CandidateChoice:
    """Which model "the candidate" is, and the newer candidates passed over, with why."""

    model: StoredModel
    skipped: list[tuple[StoredModel, str]]

    @property
    def tag(self) -> str:
        return self.model.tag

    def describe(self) -> str:
        """One line per decision: the chosen model, then each newer candidate skipped."""
        lines = [f"candidate {self.tag}: {CANDIDATE_MEANING}"]
        lines += [f"skipped {model.tag} ({why})" for model, why in self.skipped]
        return "\n".join(lines)


def refusal_summary(model: StoredModel) -> str:
    """Why the gate refused ``model``, from its labels: when, which checks, against what."""
    labels = model.labels
    parts = [f"gate={REFUSED} at {labels.get('gate_checked_at', 'an unknown time')}"]
    if labels.get("gate_failed"):
        parts.append(f"failed {labels['gate_failed']}")
    if labels.get("gate_compared_with"):
        parts.append(f"against {labels['gate_compared_with']}")
    if labels.get("gate_mae_ratio"):
        parts.append(f"MAE ratio {labels['gate_mae_ratio']}")
    if labels.get("gate_holdout_coverage"):
        parts.append(f"coverage {labels['gate_holdout_coverage']}")
    return ", ".join(parts)


def newest_candidate() -> CandidateChoice:
    """ "The candidate": the newest ``stage=candidate`` model the gate has not refused, with the
    newer refused ones it passed over; :class:`LifecycleError` when there is none."""
    skipped: list[tuple[StoredModel, str]] = []
    for model in find_by_stage(CANDIDATE):
        if model.labels.get("gate") == REFUSED:
            skipped.append((model, refusal_summary(model)))
            continue
        return CandidateChoice(model, skipped)
    refused = (
        f" ({len(skipped)} refused by the gate, newest {skipped[0][0].tag}: name a tag to use "
        "one anyway)"
        if skipped
        else ""
    )
    raise LifecycleError(
        f"no stage=candidate model the gate has not refused{refused}; train one: make train"
    )


@dataclass(frozen=True)
class ChallengerResolution:
    """The shadow's challenger tag and, in words, why that one."""

    tag: str
    reason: str


def resolve_challenger(configured: str) -> ChallengerResolution:
    """The shadow's challenger: ``candidate`` is :func:`newest_candidate` (the model ``make
    promote`` would gate next); anything else is a tag, shadowed as given."""
    if configured != NEWEST_CANDIDATE:
        return ChallengerResolution(configured, "DELIVERY_ETA_SHADOW_MODEL_TAG names it")
    try:
        choice = newest_candidate()
    except LifecycleError as exc:
        raise LifecycleError(f"DELIVERY_ETA_SHADOW_MODEL_TAG=candidate, but {exc}") from exc
    reason = f"DELIVERY_ETA_SHADOW_MODEL_TAG=candidate: {CANDIDATE_MEANING}"
    if choice.skipped:
        reason += "; skipped " + "; ".join(f"{m.tag} ({why})" for m, why in choice.skipped)
    return ChallengerResolution(choice.tag, reason)


# --------------------------------------------------------------------------- labels on disk


def now_label() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")


def set_labels(tag: str, changes: dict[str, str]) -> dict[str, str]:
    """Update labels of a stored model and persist them (atomically); returns them as on disk.

    BentoML 1.4 has no label-update call for the local store: ``framework_internals`` does it.
    """
    return write_model_labels(tag, changes)


@contextlib.contextmanager
def store_lock() -> Iterator[None]:
    """Serialise promote/rollback runs against the same store (relabelling touches two files)."""
    models = list_models()
    if not models:
        yield
        return
    lock_path = models[0].path.parent / ".lifecycle.lock"
    with lock_path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def status_table() -> str:
    """Every version with its stage and lifecycle labels, newest first."""
    lines = ["| tag | stage | created | promoted_at | gate |", "|---|---|---|---|---|"]
    for m in list_models():
        lines.append(
            f"| {m.tag} | {m.stage} | {m.creation_time:%Y-%m-%d %H:%M:%S} | "
            f"{m.labels.get('promoted_at', '')} | {m.labels.get('gate', '')} |"
        )
    return "\n".join(lines)
