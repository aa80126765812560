"""Training parts from a user's order history file (and, to retrain, exported labels)."""

from __future__ import annotations

import io
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from models.contract import FeatureContract, default_contract
from models.features import ORDER_TS, TARGET
from models.training.dataset import TimeSplit, TooFewLabels, split_by_time
from models.training.order_files import DataSource
from models.training.order_history import read_order_history
from models.training.order_report import OrderHistoryError, ValidationReport
from models.training.order_schema import order_history_schema

logger = logging.getLogger(__name__)

HOLDOUT_FILE = "holdout.parquet"
"""The holdout orders stored beside a file-trained model, for the promotion gate."""
MAX_STORED_HOLDOUT_ROWS = 200_000
"""A larger holdout is sampled down to this (seeded): the gate's MAE needs no more, and the
model store should not grow with the training file."""


def holdout_columns(contract: FeatureContract) -> tuple[str, ...]:
    """The stored holdout's columns: the order time, every field of ``contract`` and the
    target, in the training code's names -- what ``models.features.training_frame`` needs to
    rebuild the model's input with the same contract."""
    return (ORDER_TS, *contract.fields, TARGET)


@dataclass(frozen=True)
class FileTrainingData:
    """A checked order history (plus optional labels) split by time, and where it came from."""

    parts: dict[str, pd.DataFrame]
    split: TimeSplit
    source: DataSource
    report: ValidationReport
    contract: FeatureContract
    """The contract the files were checked against (the model's features)."""
    labels_source: DataSource | None = None
    labels_report: ValidationReport | None = None

    def metadata(self) -> dict[str, Any]:
        """What the registered model records about its data (``training_data``)."""
        everything = pd.concat([p[ORDER_TS] for p in self.parts.values()])
        ranges = {
            name: [str(part[ORDER_TS].min()), str(part[ORDER_TS].max())]
            for name, part in self.parts.items()
        }
        recorded: dict[str, Any] = {
            "kind": "file",
            "source": asdict(self.source),
            "rows_read": self.report.rows_read,
            "rows_dropped": self.report.rows_dropped,
            "extra_columns": self.report.extra_columns,
            "id_column": self.report.id_column,
            "duplicates_dropped": self.report.duplicates_dropped,
            "absent_optional_columns": {
                name: str(default) for name, default in self.report.absent_optional.items()
            },
            "notes": [str(note) for note in self.report.notes],
            "time_range": [str(everything.min()), str(everything.max())],
            "split": asdict(self.split),
            "split_time_ranges": ranges,
            "schema": order_history_schema(self.contract),
        }
        if self.labels_source is not None and self.labels_report is not None:
            recorded["labels"] = {
                "source": asdict(self.labels_source),
                "rows_read": self.labels_report.rows_read,
                "rows_dropped": self.labels_report.rows_dropped,
                "id_column": self.labels_report.id_column,
                "duplicates_dropped": self.labels_report.duplicates_dropped,
                "holdout": "newest labelled orders",
            }
        return recorded


def load_file_training_data(
    data: str | Path,
    contract: FeatureContract | None = None,
    *,
    labels: str | Path | None = None,
    split: TimeSplit | None = None,
    drop_invalid: bool = False,
) -> FileTrainingData:
    """Read and check ``data`` (and ``labels``) against ``contract`` (default: the default
    contract), then split by time (:func:`split_by_time`).

    Raises :class:`OrderHistoryError` with the whole report when the data cannot be used.
    """
    contract = contract or default_contract()
    split = split or TimeSplit()
    orders, report, source = read_order_history(data, contract, drop_invalid=drop_invalid)
    label_rows = labels_report = labels_source = None
    if labels is not None:
        # Labels are few (one service's feedback over hours): no minimum size or span of
        # their own; the holdout share of them must still reach the split's minimum.
        label_rows, labels_report, labels_source = read_order_history(
            labels, contract, drop_invalid=drop_invalid, min_rows=1, min_days=0
        )
    try:
        parts = split_by_time(orders, split, labels=label_rows)
    except TooFewLabels as exc:
        raise OrderHistoryError(
            f"labels {labels}: {exc}; collect more feedback, or raise the holdout share "
            "(--split H,T,C,O)"
        ) from None
    except ValueError as exc:
        raise OrderHistoryError(f"order history {data}: {exc}") from None
    for name, part in parts.items():
        logger.info(
            "%-11s %9s orders  %s .. %s",
            name,
            f"{len(part):,}",
            part[ORDER_TS].min(),
            part[ORDER_TS].max(),
        )
    return FileTrainingData(parts, split, source, report, contract, labels_source, labels_report)


def holdout_parquet(holdout: pd.DataFrame, seed: int, contract: FeatureContract) -> bytes:
    """The holdout orders (:func:`holdout_columns` of ``contract``) as Parquet bytes, sampled
    to ``MAX_STORED_HOLDOUT_ROWS``. Categories are stored as their text (dictionary-encoded):
    ``models.features.category_codes`` maps them back to the model's codes."""
    rows = holdout[list(holdout_columns(contract))]
    if len(rows) > MAX_STORED_HOLDOUT_ROWS:
        rows = rows.sample(n=MAX_STORED_HOLDOUT_ROWS, random_state=seed).sort_index()
    buffer = io.BytesIO()
    rows.reset_index(drop=True).to_parquet(buffer, index=False)
    return buffer.getvalue()


def read_stored_holdout(path: Path) -> pd.DataFrame:
    """Inverse of :func:`holdout_parquet`."""
    return pd.read_parquet(path)


__all__ = [
    "HOLDOUT_FILE",
    "FileTrainingData",
    "OrderHistoryError",
    "holdout_columns",
    "holdout_parquet",
    "load_file_training_data",
    "read_stored_holdout",
]
