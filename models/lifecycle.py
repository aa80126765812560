"""Model lifecycle: find models by stage, compare a candidate with production, promote, roll back.

``train.py`` registers every run as a new version of ``delivery_eta`` labelled
``stage=candidate``. The lifecycle moves versions between stages by rewriting the ``stage`` label
in the version's ``model.yaml`` (BentoML 1.4 has no label-update API for the local store, and
its tags cannot select by label, so stages are found by listing versions and filtering labels):

    candidate --promote (gate passed, or no production yet)--> production
    production --replaced by a promotion--> previous          (history, newest first)
    production --rollback--> rolled_back ; newest previous --rollback--> production

The promotion gate evaluates both models on the **same** holdout -- the candidate's own, regenerated
deterministically from the ``training_config`` in its metadata and checked against its recorded
training-data hash -- each model with its own entity-feature snapshot, as it would be served. It
promotes only if the candidate's MAE <= ``MAE_TOLERANCE`` x production's and its p95 single-row
inference latency <= ``LATENCY_TOLERANCE`` x production's (``predict_rows`` on one row through
the runtime the service uses -- Treelite GTIL by default -- with the calls of the two models
interleaved so that machine noise hits both alike).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import bentoml
import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from models.features import training_frame
from models.registry import MODEL_NAME, ModelArtifact, load_artifact
from models.training import TrainingConfig, data_fingerprint, generate_splits

STAGE = "stage"
CANDIDATE = "candidate"
PRODUCTION = "production"
PREVIOUS = "previous"
ROLLED_BACK = "rolled_back"

MAE_TOLERANCE = 1.02
"""A candidate may be at most 2 % worse than production on holdout MAE."""
LATENCY_TOLERANCE = 1.5
"""A candidate's p95 single-row latency may be at most 1.5x production's."""
LATENCY_CALLS = 1000
"""Timed single-row calls per model (compare() accepts no fewer than 200). Measured on this
2-core machine under load, Treelite 1-row calls take ~0.3 ms but their p95 is set by scheduler
jitter: the p95 ratio of two similar models (150 vs 200 trees) spread 0.96-2.93 over 8 runs of 200 calls
(one would have refused a good candidate), 0.92-1.11 over 8 runs of 1,000."""
LATENCY_WARMUP_CALLS = 20

Runtime = Literal["treelite", "sklearn"]

# Fields of TrainingConfig that decide the generated world and its split (not the model).
_DATA_FIELDS = ("n_orders", "history_fraction", "n_restaurants", "n_drivers", "seed")


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


# --------------------------------------------------------------------------- labels on disk


def _now_label() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")


def set_labels(tag: str, changes: dict[str, str]) -> dict[str, str]:
    """Update labels of a stored model and persist them to its ``model.yaml`` (atomically).

    BentoML 1.4 keeps labels in ``ModelInfo.labels`` and writes ``model.yaml`` with
    ``ModelInfo.dump``; there is no public update call for a local model, so this edits the
    loaded info's label dict and writes the file the same way ``bentoml.models.create`` does,
    via a temporary file + rename so a concurrent reader (a starting server) never sees half a file.
    Returns the labels as re-read from disk.
    """
    model = bentoml.models.get(tag)
    model.info.labels.update({key: str(value) for key, value in changes.items()})
    target = Path(model.path) / "model.yaml"
    mode = stat.S_IMODE(target.stat().st_mode)
    fd, tmp_name = tempfile.mkstemp(prefix=".model.yaml.", dir=target.parent)
    try:
        os.fchmod(fd, mode)  # mkstemp makes 0600; keep the file readable as before
        with os.fdopen(fd, "w", encoding="utf8") as handle:
            model.info.dump(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    return dict(bentoml.models.get(tag).info.labels)


@contextlib.contextmanager
def _store_lock() -> Iterator[None]:
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


# --------------------------------------------------------------------------- evaluation


def regenerate_holdout(training_config: dict[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The (train, holdout) orders of the run described by ``training_config``.

    Same generator, seed and time split as :func:`models.training.train_model`.
    """
    parts = generate_splits(TrainingConfig(**training_config))
    return parts["train"], parts["holdout"]


def _holdout_for(candidate: ModelArtifact) -> pd.DataFrame:
    """The candidate's holdout, verified to come from exactly the data it was trained on."""
    config = candidate.metadata.get("training_config")
    if not isinstance(config, dict):
        raise LifecycleError(f"{candidate.tag} has no training_config in its metadata")
    train, holdout = regenerate_holdout(config)
    expected_rows = candidate.metadata.get("row_counts", {}).get("holdout")
    if expected_rows is not None and expected_rows != len(holdout):
        raise LifecycleError(
            f"cannot reproduce {candidate.tag}'s data: regenerated holdout has {len(holdout)} "
            f"rows, its metadata records {expected_rows}"
        )
    fingerprint = data_fingerprint(
        pd.concat(
            [training_frame(train, candidate.entities), train[["delivery_time_minutes"]]], axis=1
        )
    )
    if fingerprint != candidate.metadata.get("training_data_sha256"):
        raise LifecycleError(
            f"cannot reproduce {candidate.tag}'s data: regenerated training rows do not match its "
            "training_data_sha256 (generator or library changed since it was trained)"
        )
    return holdout


def holdout_mae(artifact: ModelArtifact, holdout: pd.DataFrame) -> float:
    """MAE (minutes) of ``artifact`` on ``holdout`` orders, joined with its own entity features."""
    features = training_frame(holdout, artifact.entities).to_numpy()
    with threadpool_limits(1):
        point = artifact.model.predict_rows(features)[:, 0]
    return float(np.mean(np.abs(holdout["delivery_time_minutes"].to_numpy() - point)))


def default_runtime() -> Runtime:
    """The runtime the service would use: ``DELIVERY_ETA_MODEL_RUNTIME``, else treelite."""
    value = os.environ.get("DELIVERY_ETA_MODEL_RUNTIME", "treelite")
    if value not in ("treelite", "sklearn"):
        raise LifecycleError(f"unknown DELIVERY_ETA_MODEL_RUNTIME {value!r}")
    return value  # type: ignore[return-value]


def serving_predict_rows(
    artifact: ModelArtifact, runtime: Runtime
) -> Callable[[np.ndarray], np.ndarray]:
    """``predict_rows`` as the service calls it for small batches with ``runtime``."""
    if runtime == "treelite":
        from models.runtime import TreeliteRuntime

        return TreeliteRuntime(artifact.model).predict_rows
    return artifact.model.predict_rows


def single_row_latencies_ms(
    artifacts: Sequence[ModelArtifact],
    row_orders: pd.DataFrame,
    calls: int = LATENCY_CALLS,
    warmup: int = LATENCY_WARMUP_CALLS,
    runtime: Runtime = "treelite",
) -> list[np.ndarray]:
    """Latency (ms) of a 1-row ``predict_rows``, ``calls`` times per model, interleaved.

    Each model is called through the serving ``runtime`` (Treelite GTIL for small batches by
    default, as the service does; ``sklearn`` for the plain model). Round ``i`` calls the models
    in order, reversed on odd rounds (ABBA), so slow phases of a busy machine fall on every
    model alike. One native thread, like the serving batcher.
    """
    if calls < 1:
        raise ValueError("calls must be >= 1")
    predictors = [serving_predict_rows(a, runtime) for a in artifacts]
    # The same order for every model, each joined with its own entity features.
    rows = [training_frame(row_orders.iloc[[0]], a.entities).to_numpy() for a in artifacts]
    timings = [np.empty(calls) for _ in artifacts]
    order = list(range(len(artifacts)))
    with threadpool_limits(1):
        for _ in range(warmup):
            for i in order:
                predictors[i](rows[i])
        for call in range(calls):
            for i in order if call % 2 == 0 else order[::-1]:
                started = time.perf_counter_ns()
                predictors[i](rows[i])
                timings[i][call] = (time.perf_counter_ns() - started) / 1e6
    return timings


@dataclass(frozen=True)
class ModelScore:
    """One model's results on the shared holdout."""

    tag: str
    stage: str | None
    mae: float
    p50_ms: float
    p95_ms: float
    latency_calls: int


@dataclass(frozen=True)
class Comparison:
    """Candidate vs production on the same holdout, and the gate's decision."""

    candidate: ModelScore
    production: ModelScore | None
    holdout_rows: int
    holdout_source: str
    latency_runtime: str
    mae_ratio: float | None
    p95_ratio: float | None
    mae_ok: bool
    latency_ok: bool
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """Promote? Always true for a first promotion (no production to compare with)."""
        return self.production is None or (self.mae_ok and self.latency_ok)

    @property
    def decision(self) -> str:
        if self.production is None:
            return "PROMOTE (no production model yet: first promotion, gate not applied)"
        if self.passed:
            return "PROMOTE (gate passed)"
        failed = [
            name for name, ok in (("MAE", self.mae_ok), ("p95 latency", self.latency_ok)) if not ok
        ]
        return f"REFUSE ({' and '.join(failed)} over the gate)"

    def table(self) -> str:
        """Markdown comparison table plus the decision."""
        c, p = self.candidate, self.production

        def cell(value: float | None, digits: int) -> str:
            return "—" if value is None else f"{value:.{digits}f}"

        def verdict(ok: bool) -> str:
            return "—" if p is None else ("pass" if ok else "FAIL")

        lines = [
            f"Holdout: {self.holdout_source}, {self.holdout_rows} orders; "
            f"latency: {c.latency_calls} interleaved 1-row predict_rows calls per model "
            f"({self.latency_runtime} runtime, as served)",
            "",
            "| | candidate | production | ratio | gate | result |",
            "|---|---|---|---|---|---|",
            f"| tag | {c.tag} | {p.tag if p else '(none)'} | | | |",
            f"| holdout MAE (min) | {c.mae:.4f} | {cell(p.mae if p else None, 4)} | "
            f"{cell(self.mae_ratio, 3)} | <= {MAE_TOLERANCE:.2f} | {verdict(self.mae_ok)} |",
            f"| p95 1-row latency (ms) | {c.p95_ms:.3f} | {cell(p.p95_ms if p else None, 3)} | "
            f"{cell(self.p95_ratio, 3)} | <= {LATENCY_TOLERANCE:.2f} | {verdict(self.latency_ok)} |",
            f"| p50 1-row latency (ms) | {c.p50_ms:.3f} | {cell(p.p50_ms if p else None, 3)} | | | |",
            "",
            f"Decision: {self.decision}",
        ]
        lines += [f"Note: {note}" for note in self.notes]
        return "\n".join(lines)


def compare(
    candidate_tag: str,
    production_tag: str | None,
    holdout: pd.DataFrame | None = None,
    *,
    latency_calls: int = LATENCY_CALLS,
    runtime: Runtime | None = None,
) -> Comparison:
    """Evaluate ``candidate_tag`` (and ``production_tag``, if any) on the same holdout.

    ``holdout`` (orders as generated by ``models.data``) defaults to the candidate's own holdout,
    regenerated from its metadata. Both models are loaded with checksum verification. Latency
    is measured through ``runtime`` (default: the service's, see :func:`default_runtime`).
    """
    runtime = runtime or default_runtime()
    if latency_calls < 200:
        raise ValueError("latency_calls must be >= 200 for a stable p95")
    candidate = load_artifact(candidate_tag)
    production = load_artifact(production_tag) if production_tag else None
    notes: list[str] = []
    if holdout is None:
        holdout = _holdout_for(candidate)
        config = candidate.metadata["training_config"]
        source = (
            f"{candidate.tag}'s holdout (regenerated: {config['n_orders']} orders, "
            f"seed {config['seed']}, training-data hash verified)"
        )
        if production is not None:
            prod_config = production.metadata.get("training_config", {})
            if any(prod_config.get(k) != config.get(k) for k in _DATA_FIELDS):
                notes.append(
                    f"{production.tag} was trained on other generated data "
                    f"({ {k: prod_config.get(k) for k in _DATA_FIELDS} }): its MAE here is "
                    "measured on orders it may have trained on or from another world"
                )
    else:
        source = "caller-supplied holdout"
    if production is not None and production.tag == candidate.tag:
        raise LifecycleError(f"{candidate.tag} is already the production model")

    artifacts = [candidate] + ([production] if production is not None else [])
    maes = [holdout_mae(a, holdout) for a in artifacts]
    latencies = single_row_latencies_ms(artifacts, holdout, calls=latency_calls, runtime=runtime)
    scores = [
        ModelScore(
            tag=a.tag,
            stage=a.labels.get(STAGE),
            mae=mae,
            p50_ms=float(np.percentile(lat, 50)),
            p95_ms=float(np.percentile(lat, 95)),
            latency_calls=latency_calls,
        )
        for a, mae, lat in zip(artifacts, maes, latencies, strict=True)
    ]
    cand_score, prod_score = scores[0], (scores[1] if len(scores) > 1 else None)
    mae_ratio = p95_ratio = None
    mae_ok = latency_ok = True
    if prod_score is not None:
        mae_ratio = cand_score.mae / prod_score.mae
        p95_ratio = cand_score.p95_ms / prod_score.p95_ms
        mae_ok = cand_score.mae <= MAE_TOLERANCE * prod_score.mae
        latency_ok = cand_score.p95_ms <= LATENCY_TOLERANCE * prod_score.p95_ms
    return Comparison(
        candidate=cand_score,
        production=prod_score,
        holdout_rows=len(holdout),
        holdout_source=source,
        latency_runtime=runtime,
        mae_ratio=mae_ratio,
        p95_ratio=p95_ratio,
        mae_ok=mae_ok,
        latency_ok=latency_ok,
        notes=notes,
    )


# --------------------------------------------------------------------------- stage changes


@dataclass(frozen=True)
class StageChange:
    tag: str
    old_stage: str | None
    new_stage: str


@dataclass(frozen=True)
class PromotionResult:
    """What ``promote`` decided and which labels it changed."""

    promoted: bool
    comparison: Comparison
    changes: list[StageChange]

    def summary(self) -> str:
        if not self.promoted:
            return (
                f"{self.comparison.candidate.tag} refused; production unchanged "
                f"({self.comparison.production.tag if self.comparison.production else 'none'})"
            )
        return "; ".join(f"{c.tag}: {c.old_stage} -> {c.new_stage}" for c in self.changes)


def _gate_labels(comparison: Comparison) -> dict[str, str]:
    labels = {
        "gate": "first"
        if comparison.production is None
        else ("passed" if comparison.passed else "refused"),
        "gate_checked_at": _now_label(),
        "gate_holdout_mae": f"{comparison.candidate.mae:.4f}",
    }
    if comparison.production is not None:
        labels["gate_compared_with"] = comparison.production.tag
        labels["gate_mae_ratio"] = f"{comparison.mae_ratio:.4f}"
        labels["gate_p95_ratio"] = f"{comparison.p95_ratio:.4f}"
    return labels


def promote(
    candidate_tag: str | None = None,
    *,
    latency_calls: int = LATENCY_CALLS,
    holdout: pd.DataFrame | None = None,
    runtime: Runtime | None = None,
) -> PromotionResult:
    """Compare a candidate with production and, if the gate passes, make it production.

    ``candidate_tag`` defaults to the newest ``stage=candidate`` model the gate has not already
    refused (name a refused one explicitly to retry it, e.g. after a rollback). The replaced production
    model becomes ``previous`` (kept, so :func:`rollback` can restore it). A refused candidate
    keeps ``stage=candidate`` and gets ``gate=refused`` plus the ratios that refused it.
    """
    with _store_lock():
        if candidate_tag is None:
            candidates = [m for m in find_by_stage(CANDIDATE) if m.labels.get("gate") != "refused"]
            if not candidates:
                raise LifecycleError(
                    "no untested model labelled stage=candidate (refused ones need --tag); "
                    "run `make train`"
                )
            candidate_tag = candidates[0].tag
        candidate_tag = str(bentoml.models.get(candidate_tag).tag)
        stage = bentoml.models.get(candidate_tag).info.labels.get(STAGE)
        if stage == PRODUCTION:
            raise LifecycleError(f"{candidate_tag} is already the production model")
        production = current_production()
        comparison = compare(
            candidate_tag,
            production.tag if production else None,
            holdout,
            latency_calls=latency_calls,
            runtime=runtime,
        )
        gate = _gate_labels(comparison)
        if not comparison.passed:
            set_labels(candidate_tag, gate)
            return PromotionResult(promoted=False, comparison=comparison, changes=[])

        now = _now_label()
        changes: list[StageChange] = []
        for old in find_by_stage(PRODUCTION):
            set_labels(old.tag, {STAGE: PREVIOUS, "demoted_at": now})
            changes.append(StageChange(old.tag, PRODUCTION, PREVIOUS))
        seq = 1 + max((int(m.labels.get("promotion_seq", "0")) for m in list_models()), default=0)
        set_labels(
            candidate_tag,
            {**gate, STAGE: PRODUCTION, "promoted_at": now, "promotion_seq": str(seq)},
        )
        changes.insert(0, StageChange(candidate_tag, stage, PRODUCTION))
        return PromotionResult(promoted=True, comparison=comparison, changes=changes)


@dataclass(frozen=True)
class RollbackResult:
    restored: str
    demoted: str | None

    def summary(self) -> str:
        return (
            f"{self.restored}: previous -> production; {self.demoted}: production -> {ROLLED_BACK}"
        )


def rollback() -> RollbackResult:
    """Make the most recently replaced production model production again.

    The current production model becomes ``rolled_back`` (never a rollback target again); older
    ``previous`` models stay, so repeated rollbacks walk further back in history.
    """
    with _store_lock():
        previous = find_by_stage(PREVIOUS)
        if not previous:
            raise LifecycleError("no previous production model to roll back to")
        target = previous[0]
        now = _now_label()
        current = current_production()
        for old in find_by_stage(PRODUCTION):
            set_labels(old.tag, {STAGE: ROLLED_BACK, "rolled_back_at": now})
        set_labels(target.tag, {STAGE: PRODUCTION, "restored_at": now})
        return RollbackResult(restored=target.tag, demoted=current.tag if current else None)


# --------------------------------------------------------------------------- CLI


def status_table() -> str:
    """Every version with its stage and lifecycle labels, newest first."""
    lines = ["| tag | stage | created | promoted_at | gate |", "|---|---|---|---|---|"]
    for m in list_models():
        lines.append(
            f"| {m.tag} | {m.stage} | {m.creation_time:%Y-%m-%d %H:%M:%S} | "
            f"{m.labels.get('promoted_at', '')} | {m.labels.get('gate', '')} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m models.lifecycle promote [--tag T] | rollback | status``."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m models.lifecycle", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    prom = sub.add_parser("promote", help="gate the newest candidate (or --tag) against production")
    prom.add_argument("--tag", default=None, help="candidate tag (default: newest candidate)")
    prom.add_argument("--latency-calls", type=int, default=LATENCY_CALLS)
    prom.add_argument(
        "--runtime",
        choices=["treelite", "sklearn"],
        default=None,
        help="evaluator timed for the latency gate (default: as served, DELIVERY_ETA_MODEL_RUNTIME)",
    )
    sub.add_parser("rollback", help="restore the previous production model")
    sub.add_parser("status", help="list versions and their stages")
    args = parser.parse_args(argv)
    try:
        if args.command == "promote":
            result = promote(args.tag, latency_calls=args.latency_calls, runtime=args.runtime)
            print(result.comparison.table())
            print(result.summary())
            return 0 if result.promoted else 1
        if args.command == "rollback":
            print(rollback().summary())
            return 0
        print(status_table())
        return 0
    except LifecycleError as exc:
        print(f"delivery-eta lifecycle: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
