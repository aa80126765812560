"""Export the predictions that received feedback as Parquet, in the training schema.

    python -m operations.export_labels --out labels.parquet [--since HOURS]
        [--contract CONTRACT.yaml] [--backend sqlite|redis] [--path DB] [--redis-url URL]
        [--redis-prefix PREFIX]

One row per labelled prediction, its columns from the feature contract: the order as it was
predicted -- the timestamp column (when it was predicted), every request field in the
contract's order (entity ids as sent; the other fields decoded from the logged model input,
categories back to their values), the actual delivery time from ``POST /v1/feedback`` as the
target column -- then what was served (prediction id, model version, prediction and interval,
each entity aggregate's served value) and when the label arrived (``labelled_at``).
``train.py --data labels.parquet --contract`` the same contract reads the first columns
(``operations.label_file.training_columns``) and ignores the rest.

Which contract: ``--contract FILE``, else the contract of the model the service serves
(``DELIVERY_ETA_MODEL_TAG``, else the production model) from the model store, else the default
contract. Each block is checked against the contract of the model that made it (read from the
model store, once per version): a block whose model has other inputs is skipped and counted
(``skipped_other_contract``), like a block without ids; a block whose model is not in this
machine's store is exported when its rows have the contract's width, and counted
(``rows_model_not_stored``).

The export streams: labels and their blocks are read a page at a time through the log's read
interface (``prediction_log.reading``; either backend) and the rows written as Parquet row
groups (``operations.label_file``), so memory does not grow with the log. Labels whose block
is gone (evicted by the size cap) and labels of blocks without entity ids cannot be exported;
they are counted, not written.
The defaults are the service's own settings (``DELIVERY_ETA_PREDICTION_LOG_*``); the file is
written beside ``--out`` and renamed onto it when complete. docs/prediction-log.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from models.contract import ContractError, FeatureContract, load_contract
from operations.label_file import ExportError, ExportSummary, write_export
from operations.model_contracts import ModelContracts, served_contract, store_contracts
from operations.settings import InvalidSettings, add_log_options, settings_from_options
from prediction_log.location import LogLocation, announce
from prediction_log.reading import LogReadError


def export_labels(
    out: Path,
    location: LogLocation,
    *,
    since_hours: float | None = None,
    contract: FeatureContract | None = None,
    model_contracts: ModelContracts | None = None,
) -> ExportSummary:
    """Export the labelled predictions of the log at ``location`` to ``out``;
    :class:`ExportError` if it cannot run.

    ``contract`` gives the columns (default: the served model's,
    ``operations.model_contracts.served_contract``); ``model_contracts`` each block's model's
    contract (default: the model store's, ``store_contracts``).
    """
    since = None if since_hours is None else time.time() - since_hours * 3600
    lookup = model_contracts or store_contracts()
    if contract is None:
        contract, which = served_contract(lookup)
    else:
        which = "given contract"
    summary = ExportSummary(
        out=str(out), backend=location.backend, since_hours=since_hours, contract=which
    )
    try:
        with location.reader() as log:
            return write_export(log.labelled_blocks(since), out, summary, contract, lookup)
    except LogReadError as exc:
        raise ExportError(str(exc)) from exc


def main(argv: Sequence[str] | None = None) -> int:
    """Run the export; prints one JSON summary line. Exit 2, one line on stderr, if it cannot."""
    parser = argparse.ArgumentParser(
        prog="python -m operations.export_labels",
        description="Export the predictions that received feedback as Parquet (training schema).",
    )
    parser.add_argument("--out", type=Path, required=True, help="Parquet file to write")
    add_log_options(parser)
    parser.add_argument(
        "--since", type=float, metavar="HOURS", help="only labels given in the last HOURS"
    )
    parser.add_argument(
        "--contract",
        type=Path,
        help="feature contract (YAML) giving the columns; default: the served model's",
    )
    args = parser.parse_args(argv)
    try:
        if args.since is not None and not args.since > 0:
            raise ExportError("--since must be a positive number of hours")
        contract = None
        if args.contract is not None:
            try:
                contract = load_contract(args.contract)
            except ContractError as exc:
                raise ExportError(" ".join(str(exc).split())) from exc
        try:
            settings = settings_from_options(args)
        except InvalidSettings as exc:
            raise ExportError(str(exc)) from exc
        announce(settings.prediction_log, "export-labels", settings.redis_url)
        summary = export_labels(
            args.out, settings.log_location(), since_hours=args.since, contract=contract
        )
    except ExportError as exc:
        print(f"export-labels: {exc}", file=sys.stderr, flush=True)
        return 2
    print(json.dumps(asdict(summary)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
