"""Train a model and register it, with its model card, in the BentoML model store."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import bentoml

from models.contract import FeatureContract, default_contract
from models.store.artifact import register_model
from models.store.stages import list_models
from models.training.config import TrainingConfig
from models.training.fit import TrainingResult, fit_and_evaluate, train_model
from models.training.from_files import HOLDOUT_FILE, FileTrainingData, holdout_parquet
from models.training.model_card import render_markdown, render_plots

FIT_FIELDS = ("max_iter", "learning_rate", "interval_max_iter", "interval_learning_rate", "seed")


@dataclass(frozen=True)
class SameData:
    """A model already in the store that was trained on the same rows."""

    tag: str
    stage: str | None
    same_settings: bool
    """Its fitting settings (``training_config``) are the new model's too."""


@dataclass(frozen=True)
class RegisteredModel:
    """A registered model version and the training run that produced it."""

    tag: str
    path: Path
    result: TrainingResult
    same_data: tuple[SameData, ...] = ()
    """Older models whose ``training_data_sha256`` is this one's, newest first."""


def models_trained_on(data_hash: str, training_config: dict[str, Any]) -> list[SameData]:
    """The store's models whose training-data fingerprint is ``data_hash``, newest first.

    The fingerprint is of the training rows (``dataset.training_data_fingerprint``), so a
    match means the same data, not the same model: the fitting settings may differ.
    """
    found = []
    for stored in list_models():
        metadata = bentoml.models.get(stored.tag).info.metadata
        if metadata.get("training_data_sha256") == data_hash:
            same = metadata.get("training_config") == training_config
            found.append(SameData(stored.tag, stored.stage, same))
    return found


def train_and_register(
    config: TrainingConfig,
    *,
    stage: str,
    card_dir: Path | None = None,
    data: FileTrainingData | None = None,
    contract: FeatureContract | None = None,
) -> RegisteredModel:
    """Train with ``config``, register the model labelled ``stage``, write its model card.

    Without ``data`` the model trains on the synthetic history of ``config``; with it, on the
    user's order history (its holdout is stored beside the model for the promotion gate).
    ``contract`` declares the features (default: the one ``data`` was checked against, else
    the default contract); it is stored in the model's metadata and becomes the API of the
    service that serves it. Raises :class:`ValueError` when ``contract`` is not the contract
    ``data`` was checked against, or (synthetic data) declares a field the generator lacks.
    """
    if data is not None:
        if contract is not None and contract != data.contract:
            raise ValueError("the data was checked against another contract than the one given")
        contract = data.contract
    contract = contract or default_contract()
    extra: dict[str, bytes] = {}
    if data is None:
        result = train_model(config, contract)
        training_data: dict[str, Any] = {
            "kind": "synthetic",
            "generator": "models/training/synthetic_orders.py",
        }
    else:
        result = fit_and_evaluate(data.parts, config, contract)
        training_data = data.metadata()
        extra[HOLDOUT_FILE] = holdout_parquet(data.parts["holdout"], config.seed, contract)
        training_data["holdout_file"] = HOLDOUT_FILE
        training_data["holdout_sha256"] = hashlib.sha256(extra[HOLDOUT_FILE]).hexdigest()
    # A file-trained model records only the fitting knobs: the sizes describe the generator.
    training_config = (
        asdict(config)
        if data is None
        else {k: v for k, v in asdict(config).items() if k in FIT_FIELDS}
    )
    metadata = {
        "metrics": result.metrics,
        "interval": {
            "method": "conformalized quantile regression (split conformal)",
            "level": result.model.interval_level,
            "holdout_coverage": result.metrics["interval_coverage"],
        },
        "training_data_sha256": result.data_hash,
        "row_counts": result.n_rows,
        "training_config": training_config,
        "reference_stats": result.reference_stats,
        "cohort_reference": result.cohort_reference,
        "entity_defaults": result.entities.defaults,
        "training_data": training_data,
        "segments": result.segments,
        "baselines": result.baselines,
    }
    plots = render_plots(result.holdout, result.model.interval_level, seed=config.seed)
    card_files: dict[str, bytes] = {}

    def model_card(tag: str) -> dict[str, bytes]:
        card = render_markdown(tag, metadata, contract)
        card_files.update(plots, **{"model_card.md": card.encode()}, **extra)
        return card_files

    # Looked up before registering: the new model is not one of them.
    same_data = models_trained_on(result.data_hash, training_config)
    created = register_model(
        result.model,
        result.entities,
        contract,
        metadata,
        labels={"stage": stage, "owner": "delivery-eta"},
        extra_files=model_card,
    )
    stored = bentoml.models.get(created.tag)  # create() wrote to a temp dir, then moved it
    if card_dir is not None:
        card_dir.mkdir(parents=True, exist_ok=True)
        for name, content in card_files.items():
            if name in extra:
                continue
            (card_dir / name).write_bytes(content)
    return RegisteredModel(
        tag=str(stored.tag), path=Path(stored.path), result=result, same_data=tuple(same_data)
    )
