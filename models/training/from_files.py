"""Training parts from a user's order history file (and, to retrain, exported labels)."""

from __future__ import annotations

import io
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from models.training.dataset import TimeSplit, split_by_time
from models.training.order_history import (
    ORDER_HISTORY_SCHEMA,
    DataSource,
    OrderHistoryError,
    ValidationReport,
    read_order_history,
)

logger = logging.getLogger(__name__)

HOLDOUT_FILE = "holdout.parquet"
"""The holdout orders stored beside a file-trained model, for the promotion gate."""
MAX_STORED_HOLDOUT_ROWS = 200_000
"""A larger holdout is sampled down to this (seeded): the gate's MAE needs no more, and the
model store should not grow with the training file."""
HOLDOUT_COLUMNS = (
    "order_ts",
    "restaurant_id",
    "driver_id",
    "distance_km",
    "is_peak_hour",
    "order_value",
    "delivery_time_minutes",
)


@dataclass(frozen=True)
class FileTrainingData:
    """A checked order history (plus optional labels) split by time, and where it came from."""

    parts: dict[str, pd.DataFrame]
    split: TimeSplit
    source: DataSource
    report: ValidationReport
    labels_source: DataSource | None = None
    labels_report: ValidationReport | None = None

    def metadata(self) -> dict[str, Any]:
        """What the registered model records about its data (``training_data``)."""
        everything = pd.concat([p["order_ts"] for p in self.parts.values()])
        ranges = {
            name: [str(part["order_ts"].min()), str(part["order_ts"].max())]
            for name, part in self.parts.items()
        }
        recorded: dict[str, Any] = {
            "kind": "file",
            "source": asdict(self.source),
            "rows_read": self.report.rows_read,
            "rows_dropped": self.report.rows_dropped,
            "extra_columns": self.report.extra_columns,
            "time_range": [str(everything.min()), str(everything.max())],
            "split": asdict(self.split),
            "split_time_ranges": ranges,
            "schema": ORDER_HISTORY_SCHEMA,
        }
        if self.labels_source is not None and self.labels_report is not None:
            recorded["labels"] = {
                "source": asdict(self.labels_source),
                "rows_read": self.labels_report.rows_read,
                "rows_dropped": self.labels_report.rows_dropped,
                "holdout": "newest labelled orders",
            }
        return recorded


def load_file_training_data(
    data: str | Path,
    *,
    labels: str | Path | None = None,
    split: TimeSplit | None = None,
    drop_invalid: bool = False,
) -> FileTrainingData:
    """Read and check ``data`` (and ``labels``), then split by time (:func:`split_by_time`).

    Raises :class:`OrderHistoryError` with the whole report when the data cannot be used.
    """
    split = split or TimeSplit()
    orders, report, source = read_order_history(data, drop_invalid=drop_invalid)
    label_rows = labels_report = labels_source = None
    if labels is not None:
        # Labels are few (one service's feedback over hours): no minimum size or span of
        # their own; the holdout share of them must still reach the split's minimum.
        label_rows, labels_report, labels_source = read_order_history(
            labels, drop_invalid=drop_invalid, min_rows=1, min_days=0
        )
    try:
        parts = split_by_time(orders, split, labels=label_rows)
    except ValueError as exc:
        hint = (
            f"; with --labels the holdout is the newest {split.holdout:.0%} of the "
            f"{len(label_rows):,} labelled orders: collect more feedback, or raise the holdout share"
            if label_rows is not None
            else ""
        )
        raise OrderHistoryError(f"order history {data}: {exc}{hint}") from None
    for name, part in parts.items():
        logger.info(
            "%-11s %9s orders  %s .. %s",
            name,
            f"{len(part):,}",
            part["order_ts"].min(),
            part["order_ts"].max(),
        )
    return FileTrainingData(parts, split, source, report, labels_source, labels_report)


def holdout_parquet(holdout: pd.DataFrame, seed: int) -> bytes:
    """The holdout orders as Parquet bytes (sampled to ``MAX_STORED_HOLDOUT_ROWS``)."""
    rows = holdout[list(HOLDOUT_COLUMNS)]
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
    "holdout_parquet",
    "load_file_training_data",
    "read_stored_holdout",
]
