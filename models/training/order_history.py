"""Read a user's order history (CSV, Parquet, or a directory of Parquet) and check every row
against a feature contract.

The file holds one row per delivered order with the contract's columns
(:func:`order_history_schema`): the order time (``contract.timestamp.column``), every field of
the contract, and the target (``contract.target.column``). Reading is columnar (pyarrow): only
those columns are read, ids and categories become dictionary-encoded categoricals, so memory
grows with the rows times the contract's columns, not with the file's width.

Every check runs before anything is trained and all of them are reported at once: a user
fixing an export should see every problem in one run, not one per run.

The reading is in modules: the columns a contract asks for (``order_schema``), the files and
their columns (``order_files``), the row checks (``order_checks``) and the report
(``order_report``); :func:`read_order_history` runs them in order.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pandas as pd

from models.contract import FeatureContract, default_contract
from models.features import ORDER_TS, TARGET
from models.order_paths import OrderPathError, resolve_files
from models.training.dataset import ORDER_KEY, order_keys, sort_orders
from models.training.order_checks import check_rows
from models.training.order_files import (
    ORDER_ID_COLUMNS,
    DataSource,
    file_columns,
    fingerprint_files,
    missing_columns,
    read_table,
)
from models.training.order_report import OrderHistoryError, ValidationReport
from models.training.order_schema import order_history_schema

logger = logging.getLogger(__name__)


def read_order_history(
    path: str | Path,
    contract: FeatureContract | None = None,
    *,
    drop_invalid: bool = False,
    min_rows: int = 1000,
    min_days: float = 14.0,
) -> tuple[pd.DataFrame, ValidationReport, DataSource]:
    """Read and check an order history against ``contract`` (default: the default contract);
    raise :class:`OrderHistoryError` with the full report.

    Returns the orders sorted by time, ties by their key -- columns ``ORDER_TS``, the
    contract's fields in declared order (entities and categories as pandas categoricals,
    categories over the contract's levels as text), ``TARGET``, ``dataset.ORDER_KEY`` -- the
    report, and the source's fingerprint. An optional field whose column the file lacks takes
    its default on every row (the report says so). With an order id column
    (:data:`ORDER_ID_COLUMNS`) a row repeating an earlier one (same id, same values) is dropped
    and counted; rows sharing an id with other values are a problem naming the ids. With
    ``drop_invalid`` rows with bad values are dropped and counted instead of failing; missing
    columns and too few rows or days still fail.
    """
    contract = contract or default_contract()
    schema = order_history_schema(contract)
    root = Path(path)
    try:
        fmt, files = resolve_files(root)
    except OrderPathError as exc:
        raise OrderHistoryError(str(exc)) from None
    report = ValidationReport(source=str(root))
    columns, column_problems, everywhere = file_columns(fmt, files, schema)
    missing, extra, report.absent_optional = missing_columns(columns, contract, schema)
    id_column = next((c for c in ORDER_ID_COLUMNS if c in everywhere), None)
    report.id_column = id_column
    report.extra_columns = [c for c in extra if c != id_column]
    reserved = [
        f"field {name!r} has the training code's internal name for the "
        f"{'order time' if name == ORDER_TS else 'target'}: rename the field in the contract"
        for name in contract.fields
        if name in (ORDER_TS, TARGET)
    ]
    if missing or column_problems or reserved:
        report.fatal += reserved + missing + column_problems
        raise OrderHistoryError(report.text())

    present = [name for name in schema if name in columns]
    if id_column is not None and id_column not in present:
        present.append(id_column)
    size_mib = sum(f.stat().st_size for f in files) / 2**20
    logger.info("reading %s (%d %s file(s), %.0f MiB)", root, len(files), fmt, size_mib)
    started = time.perf_counter()
    table = read_table(fmt, files, present, contract, schema, id_column)
    report.rows_read = table.num_rows
    logger.info(
        "read %s rows x %d columns from %d %s file(s) in %.1f s",
        f"{table.num_rows:,}",
        table.num_columns,
        len(files),
        fmt,
        time.perf_counter() - started,
    )
    started = time.perf_counter()
    frame, checker, ids, repeated = check_rows(table, contract, id_column)
    del table
    report.problems = checker.problems
    logger.info("checked %s rows in %.1f s", f"{len(frame):,}", time.perf_counter() - started)
    frame[ORDER_KEY] = order_keys(frame, ids)
    kept = ~repeated
    report.duplicates_dropped = int(repeated.sum())
    if checker.problems and drop_invalid:
        report.rows_dropped = int((checker.bad & kept).sum())
        kept &= ~checker.bad
    if not kept.all():
        frame = frame[kept]
    report.rows_kept = len(frame)
    report.notes = checker.counted_notes(kept)

    if len(frame) < min_rows:
        report.fatal.append(f"too few valid rows: {len(frame):,} (need at least {min_rows:,})")
    if len(frame):
        span_days = (frame[ORDER_TS].max() - frame[ORDER_TS].min()) / pd.Timedelta(days=1)
        if span_days < min_days:
            report.fatal.append(
                f"too few days: the orders span {span_days:.1f} days (need at least {min_days:g} "
                "for the time splits)"
            )
    if report.fatal or (report.problems and not drop_invalid):
        if report.problems and not drop_invalid:
            report.fatal.append("fix the rows above, or pass --drop-invalid to train without them")
        raise OrderHistoryError(report.text())

    for name in contract.entity_fields:
        frame[name] = frame[name].cat.remove_unused_categories()
    frame = sort_orders(frame)
    source = DataSource(
        path=str(root.resolve()),
        format=fmt,
        files=[str(f.relative_to(root)) if f != root else f.name for f in files],
        sha256=fingerprint_files(files, root),
    )
    return frame, report, source
