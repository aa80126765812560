"""Train a model and register it, with its model card, in the BentoML model store."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import bentoml

from models.features import FEATURE_NAMES
from models.store.artifact import register_model
from models.training.config import TrainingConfig
from models.training.fit import TrainingResult, train_model
from models.training.model_card import render_markdown, render_plots


@dataclass(frozen=True)
class RegisteredModel:
    """A registered model version and the training run that produced it."""

    tag: str
    path: Path
    result: TrainingResult


def train_and_register(
    config: TrainingConfig, *, stage: str, card_dir: Path | None = None
) -> RegisteredModel:
    """Train with ``config``, register the model labelled ``stage``, write its model card."""
    result = train_model(config)
    metadata = {
        "metrics": result.metrics,
        "interval": {
            "method": "conformalized quantile regression (split conformal)",
            "level": result.model.interval_level,
            "holdout_coverage": result.metrics["interval_coverage"],
        },
        "training_data_sha256": result.data_hash,
        "row_counts": result.n_rows,
        "training_config": asdict(config),
        "reference_stats": result.reference_stats,
        "entity_defaults": result.entities.defaults,
    }
    plots = render_plots(result.holdout, result.model.interval_level, seed=config.seed)
    card_files: dict[str, bytes] = {}

    def model_card(tag: str) -> dict[str, bytes]:
        card = render_markdown(tag, {**metadata, "feature_names": list(FEATURE_NAMES)})
        card_files.update(plots, **{"model_card.md": card.encode()})
        return card_files

    created = register_model(
        result.model,
        result.entities,
        metadata,
        labels={"stage": stage, "owner": "delivery-eta"},
        extra_files=model_card,
    )
    stored = bentoml.models.get(created.tag)  # create() wrote to a temp dir, then moved it
    if card_dir is not None:
        card_dir.mkdir(parents=True, exist_ok=True)
        for name, content in card_files.items():
            (card_dir / name).write_bytes(content)
    return RegisteredModel(tag=str(stored.tag), path=Path(stored.path), result=result)
