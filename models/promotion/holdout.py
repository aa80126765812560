"""Which holdout the gate judges on, verified: the candidate's own -- regenerated from the
``training_config`` in its metadata and checked against its training-data fingerprint, or the
one a file-trained candidate stored beside itself, checked against its sha256 -- and each
model's predictions on it, joined into its inputs by its own contract and entity features.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from models.contract import FeatureContract
from models.features import TARGET, training_frame
from models.store.artifact import ModelArtifact, sha256_file
from models.store.stages import LifecycleError
from models.training.config import TrainingConfig
from models.training.dataset import generate_splits, training_data_fingerprint
from models.training.from_files import HOLDOUT_FILE, read_stored_holdout

# Fields of TrainingConfig that decide the generated world and its split (not the model).
_DATA_FIELDS = ("n_orders", "history_fraction", "n_restaurants", "n_drivers", "seed")


def regenerate_holdout(training_config: dict[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The (train, holdout) orders of the run described by ``training_config``.

    Same generator, seed and time split as :func:`models.training.train_model`.
    """
    parts = generate_splits(TrainingConfig(**training_config))
    return parts["train"], parts["holdout"]


def missing_columns(contract: FeatureContract, orders: pd.DataFrame) -> list[str]:
    """The columns a model of ``contract`` needs (its fields and the target) that ``orders``
    lacks."""
    return [c for c in (*contract.fields, TARGET) if c not in orders.columns]


def _stored_holdout(candidate: ModelArtifact, data: dict[str, Any]) -> pd.DataFrame:
    """The holdout a file-trained candidate stored beside itself, checked against its sha256
    and against the candidate's contract (it must hold every field)."""
    path = candidate.path / str(data.get("holdout_file", HOLDOUT_FILE))
    if not path.is_file():
        raise LifecycleError(f"{candidate.tag} was trained on a file but has no {path.name}")
    if sha256_file(path) != data.get("holdout_sha256"):
        raise LifecycleError(f"{candidate.tag}: {path.name} does not match its recorded sha256")
    holdout = read_stored_holdout(path)
    missing = missing_columns(candidate.contract, holdout)
    if missing:
        raise LifecycleError(
            f"{candidate.tag}: {path.name} lacks its contract's columns {missing}; retrain it"
        )
    return holdout


def candidate_holdout(candidate: ModelArtifact) -> pd.DataFrame:
    """The candidate's holdout, verified to come from exactly the data it was trained on."""
    data = candidate.metadata.get("training_data", {})
    if isinstance(data, dict) and data.get("kind") == "file":
        return _stored_holdout(candidate, data)
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
    fingerprint = training_data_fingerprint(train, candidate.contract, candidate.entities)
    if fingerprint != candidate.metadata.get("training_data_sha256"):
        raise LifecycleError(
            f"cannot reproduce {candidate.tag}'s data: regenerated training rows do not match its "
            "training_data_sha256 (generator or library changed since it was trained)"
        )
    return holdout


def holdout_predictions(artifact: ModelArtifact, holdout: pd.DataFrame) -> np.ndarray:
    """``artifact``'s (point, lower, upper) rows for ``holdout`` orders, joined into its inputs by
    its own contract and entity features."""
    features = training_frame(holdout, artifact.contract, artifact.entities).to_numpy()
    with threadpool_limits(1):
        return np.asarray(artifact.model.predict_rows(features))


def holdout_mae(artifact: ModelArtifact, holdout: pd.DataFrame) -> float:
    """MAE (minutes) of ``artifact`` on ``holdout`` orders."""
    point = holdout_predictions(artifact, holdout)[:, 0]
    return float(np.mean(np.abs(holdout[TARGET].to_numpy() - point)))


def gate_holdout(
    candidate: ModelArtifact, production: ModelArtifact | None
) -> tuple[pd.DataFrame, str, list[str]]:
    """The candidate's own holdout, where it comes from in words, and notes on how far
    production's figures on it can be trusted (production may have trained on these orders,
    or on another generated world)."""
    notes: list[str] = []
    holdout = candidate_holdout(candidate)
    data = candidate.metadata.get("training_data", {})
    if isinstance(data, dict) and data.get("kind") == "file":
        labels = data.get("labels")
        source = (
            f"{candidate.tag}'s holdout: the newest "
            + ("labelled orders (exported feedback)" if labels else "orders of its training file")
            + f" {data['split_time_ranges']['holdout'][0]} .. "
            f"{data['split_time_ranges']['holdout'][1]}, sha256 verified"
        )
        prod_data = production.metadata.get("training_data", {}) if production else {}
        if production is not None and prod_data.get("kind") == "file":
            fitted_on = {k: v for k, v in prod_data["split_time_ranges"].items() if k != "holdout"}
            prod_end = max(pd.Timestamp(r[1]) for r in fitted_on.values())
            if prod_end >= pd.Timestamp(data["split_time_ranges"]["holdout"][0]):
                notes.append(
                    f"{production.tag}'s training file reaches {prod_end}, into this holdout: "
                    "production may have seen these orders (its MAE here is optimistic)"
                )
        return holdout, source, notes
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
    return holdout, source, notes
