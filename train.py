"""Train the delivery-time model and register it in the BentoML model store.

    python train.py                      # full run (about 20 s on 2 cores)
    python train.py --small              # quick model, for tests and demos
    python train.py --if-missing         # do nothing when the store already has a model
    python train.py materialize --redis-url redis://127.0.0.1:6379/0
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import asdict
from pathlib import Path

import bentoml

from models.feature_store import materialize
from models.model_card import render_markdown, render_plots
from models.registry import MODEL_NAME, load_artifact, register_model
from models.schema import FEATURE_NAMES
from models.training import TrainingConfig, train_model

logger = logging.getLogger("delivery_eta.train")


def train(args: argparse.Namespace) -> int:
    if args.if_missing and bentoml.models.list(MODEL_NAME):
        logger.info("model store already has %s; skipping training", MODEL_NAME)
        return 0
    config = TrainingConfig.small() if args.small else TrainingConfig()
    result = train_model(config)
    metadata = {
        "metrics": result.metrics,
        "interval": {"method": "conformalized quantile regression (split conformal)",
                     "level": result.model.interval_level,
                     "holdout_coverage": result.metrics["interval_coverage"]},
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

    model = register_model(result.model, result.entities, metadata,
                           labels={"stage": args.stage, "owner": "delivery-eta"}, extra_files=model_card)
    model = bentoml.models.get(model.tag)  # the stored copy (create() wrote to a temp dir)
    if args.card_dir:
        card_dir = Path(args.card_dir)
        card_dir.mkdir(parents=True, exist_ok=True)
        for name, content in card_files.items():
            (card_dir / name).write_bytes(content)

    m = result.metrics
    print(f"registered {model.tag} (stage={args.stage}) at {model.path}")
    print(f"  holdout MAE      {m['holdout_mae']:.3f} min   Bayes floor {m['bayes_floor_mae']:.3f} min"
          f"   ratio {m['mae_over_bayes_floor']:.3f} (target <= 1.05)")
    print(f"  holdout RMSE     {m['holdout_rmse']:.3f} min")
    print(f"  baselines MAE    mean {m['baseline_mean_mae']:.3f}   distance-only linear "
          f"{m['baseline_distance_linear_mae']:.3f}")
    print(f"  90% interval     coverage {m['interval_coverage']:.3f} (target 0.88-0.92)"
          f"   mean width {m['interval_mean_width']:.1f} min")
    print(f"  model card       {Path(model.path) / 'model_card.md'}"
          + (f" (copy in {args.card_dir}/)" if args.card_dir else ""))
    return 0


def materialize_cmd(args: argparse.Namespace) -> int:
    artifact = load_artifact(args.model_tag)
    written = materialize(artifact.entities, args.redis_url)
    print(json.dumps({"model": artifact.tag, "redis_keys_written": written}))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", action="store_true", help="small fast model (tests, demos)")
    parser.add_argument("--if-missing", action="store_true", help="skip if a model is already registered")
    parser.add_argument("--stage", default="candidate", help="value of the model's `stage` label")
    parser.add_argument("--card-dir", default="reports/model_card", help="also write the model card here")
    sub = parser.add_subparsers(dest="command")
    mat = sub.add_parser("materialize", help="load a model's entity features into Redis")
    mat.add_argument("--redis-url", required=True)
    mat.add_argument("--model-tag", default=f"{MODEL_NAME}:latest")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return materialize_cmd(args) if args.command == "materialize" else train(args)


if __name__ == "__main__":
    sys.exit(main())
