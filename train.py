"""Train the delivery-time model and register it in the BentoML model store.

python train.py                      # full run (11-13 s on 2 idle cores)
python train.py --small              # quick model, for tests and demos
python train.py --if-missing         # do nothing when the model the service would serve loads
python train.py --data orders.csv    # train on your order history (CSV, Parquet, Parquet dir)
python train.py --data orders.csv --contract contract.yaml   # on the fields your contract declares
python train.py --data orders.parquet --labels labels.parquet   # retrain with exported labels
python train.py materialize --redis-url redis://127.0.0.1:6379/0
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from models.contract import ContractError, default_contract, load_contract

if TYPE_CHECKING:
    from models.training.dataset import TimeSplit

# The rest (pandas, scikit-learn, BentoML's store: ~4 s of imports) is imported where it is
# used, after the arguments and the contract are checked: a refusal answers at once.

logger = logging.getLogger("delivery_eta.train")


def _served_tag(pinned: str | None = None) -> str:
    from models.settings import ModelSettings
    from models.store.stages import resolve_serving_tag

    """The tag the service would serve: ``pinned``, else DELIVERY_ETA_MODEL_TAG, else the
    ``stage=production`` model (the newest model before the first promotion)."""
    return resolve_serving_tag(pinned or ModelSettings().model_tag)


def _store_has_servable_model() -> bool:
    """True when the model the service would serve loads and verifies with this code."""
    from models.store.artifact import ModelArtifactError, load_artifact

    try:
        load_artifact(_served_tag())
    except ModelArtifactError as exc:
        logger.info("no servable model (%s); training one", exc)
        return False
    return True


def _time_split(text: str) -> TimeSplit:
    from models.training.dataset import TimeSplit

    try:
        shares = [float(part) for part in text.split(",")]
        return TimeSplit(*shares)
    except (TypeError, ValueError) as exc:
        raise argparse.ArgumentTypeError(
            f"--split wants 4 shares history,train,calibration,holdout summing to 1 ({exc})"
        ) from None


def train(args: argparse.Namespace) -> int:
    if args.if_missing and _store_has_servable_model():
        from models.store.artifact import MODEL_NAME

        logger.info("model store already has a servable %s; skipping training", MODEL_NAME)
        return 0
    if args.labels and not args.data:
        print("error: --labels needs --data (the order history to retrain on)", file=sys.stderr)
        return 2
    try:
        contract = load_contract(args.contract) if args.contract else default_contract()
    except ContractError as exc:
        print(f"error: cannot use this contract, nothing registered\n{exc}", file=sys.stderr)
        return 2
    from models.training.dataset import TimeSplit
    from models.training.from_files import OrderHistoryError, load_file_training_data

    data = None
    if args.data:
        try:
            data = load_file_training_data(
                args.data,
                contract,
                labels=args.labels,
                split=args.split or TimeSplit(),
                drop_invalid=args.drop_invalid,
            )
        except OrderHistoryError as exc:
            print(f"error: cannot train on this data, nothing registered\n{exc}", file=sys.stderr)
            return 2
        print(data.report.text())
        if data.labels_report is not None:
            print(data.labels_report.text())
    from models.intervals import CoverageCheck
    from models.training.config import TrainingConfig
    from models.training.fit import INTERVAL_LEVEL, linear_baseline
    from models.training.release import train_and_register

    config = TrainingConfig.small() if args.small else TrainingConfig()
    card_dir = Path(args.card_dir) if args.card_dir else None
    try:
        registered = train_and_register(
            config, stage=args.stage, card_dir=card_dir, data=data, contract=contract
        )
    except ValueError as exc:  # a contract the synthetic history cannot train
        print(f"error: {exc}; nothing registered", file=sys.stderr)
        return 2
    m = registered.result.metrics
    baseline_field, baseline_metric = linear_baseline(contract)
    print(f"registered {registered.tag} (stage={args.stage}) at {registered.path}")
    for same in registered.same_data:
        # Registered all the same: the fingerprint covers the rows, not the code or a
        # deliberate re-run, and `make retrain` gates the model it just trained.
        settings = "the same fitting settings" if same.same_settings else "other fitting settings"
        print(
            f"  notice: the training data is identical to {same.tag}'s "
            f"(stage={same.stage}; {settings}): no new data since that model"
        )
    if "bayes_floor_mae" in m:
        floor = (
            f"   Bayes floor {m['bayes_floor_mae']:.3f} min"
            f"   ratio {m['mae_over_bayes_floor']:.3f} (target <= 1.05)"
        )
    else:
        floor = "   Bayes floor unknown (real data)"
    print(f"  holdout MAE      {m['holdout_mae']:.3f} min{floor}")
    print(f"  holdout RMSE     {m['holdout_rmse']:.3f} min")
    print(
        f"  baselines MAE    mean {m['baseline_mean_mae']:.3f}   {baseline_field}-only linear "
        f"{m[baseline_metric]:.3f}"
    )
    coverage = CoverageCheck(
        m["interval_coverage"], registered.result.n_rows["holdout"], INTERVAL_LEVEL
    )
    print(f"  90% interval     coverage {coverage.describe()}")
    print(f"                   mean width {m['interval_mean_width']:.1f} min")
    print("  by segment       orders      MAE  coverage  width")
    for seg in registered.result.segments:
        if seg["rows"]:
            print(
                f"    {seg['segment'] + ': ' + seg['value']:<38} {seg['rows']:>8,} "
                f"{seg['mae']:>8.3f} {seg['coverage']:>9.3f} {seg['mean_width']:>6.1f}"
            )
    print(
        f"  model card       {registered.path / 'model_card.md'}"
        + (f" (copy in {card_dir}/)" if card_dir else "")
    )
    return 0


def materialize_cmd(args: argparse.Namespace) -> int:
    from models.store.artifact import load_artifact
    from serving.pipeline.feature_store import materialize

    artifact = load_artifact(_served_tag(args.model_tag))
    written = materialize(artifact.entities, artifact.contract, args.redis_url)
    print(json.dumps({"model": artifact.tag, "redis_keys_written": written}))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--small", action="store_true", help="small fast model (tests, demos)")
    parser.add_argument(
        "--if-missing",
        action="store_true",
        help="skip if the store's latest model is one this code can serve",
    )
    parser.add_argument(
        "--data",
        help="train on this order history (CSV, Parquet or a directory of Parquet; "
        "schema in README 'Train on your own data') instead of the synthetic generator",
    )
    parser.add_argument(
        "--contract",
        help="the feature contract (YAML) to train and check --data against (default: "
        "models/contract/default.yaml, the five fields of the tutorial)",
    )
    parser.add_argument(
        "--labels",
        help="with --data: also train on these exported labels (make export-labels); the "
        "holdout is then the newest labelled orders",
    )
    parser.add_argument(
        "--drop-invalid",
        action="store_true",
        help="train on the valid rows and report how many were dropped (default: refuse)",
    )
    parser.add_argument(
        "--split",
        type=_time_split,
        default=None,
        metavar="H,T,C,O",
        help="time shares of --data, oldest first: entity history, train, calibration, "
        "holdout (default 0.4,0.35,0.1,0.15)",
    )
    parser.add_argument("--stage", default="candidate", help="value of the model's `stage` label")
    parser.add_argument(
        "--card-dir",
        default="reports/model_card",
        help="also write the model card here ('' to skip)",
    )
    sub = parser.add_subparsers(dest="command")
    mat = sub.add_parser("materialize", help="load a model's entity features into Redis")
    mat.add_argument("--redis-url", required=True)
    mat.add_argument("--model-tag", help="model whose features to load (default: the served one)")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    return materialize_cmd(args) if args.command == "materialize" else train(args)


if __name__ == "__main__":
    sys.exit(main())
