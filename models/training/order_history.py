"""Read a user's order history (CSV, Parquet, or a directory of Parquet) and check every row.

The file holds one row per delivered order in :data:`ORDER_HISTORY_SCHEMA`. Reading is
columnar (pyarrow): only the schema's columns are read, ids become dictionary-encoded
categoricals, so memory grows with the rows times the seven columns, not with the file's width.

Every check runs before anything is trained and all of them are reported at once: a user
fixing an export should see every problem in one run, not one per run.
"""

from __future__ import annotations

import difflib
import hashlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from models.features import (
    DELIVERY_TIME_MIN_RANGE,
    DISTANCE_KM_RANGE,
    ENTITY_ID_MAX_LENGTH,
    ENTITY_ID_PATTERN,
    ORDER_VALUE_RANGE,
)

logger = logging.getLogger(__name__)

ORDER_HISTORY_SCHEMA: dict[str, str] = {
    "created_at": "timestamp the order was placed (ISO 8601; without an offset it is UTC)",
    "restaurant_id": "restaurant id, 1-64 characters of A-Z a-z 0-9 _ . : -",
    "driver_id": "driver id, same alphabet",
    "distance_km": f"number, {DISTANCE_KM_RANGE[0]}-{DISTANCE_KM_RANGE[1]}",
    "is_peak_hour": "0 or 1 (true/false accepted)",
    "order_value": f"number, {ORDER_VALUE_RANGE[0]}-{ORDER_VALUE_RANGE[1]}",
    "delivery_time_min": (
        f"actual minutes from order to door, {DELIVERY_TIME_MIN_RANGE[0]}-"
        f"{DELIVERY_TIME_MIN_RANGE[1]}"
    ),
}
"""The columns a training file must have, and what each must hold."""

# The file's names -> the names the training code uses (the generator's, older than the schema).
INTERNAL_NAMES = {"created_at": "order_ts", "delivery_time_min": "delivery_time_minutes"}
SAMPLE_ROWS = 5
"""Offending row numbers shown per problem."""


class OrderHistoryError(ValueError):
    """The order history cannot be trained on; ``str()`` is the whole report."""


@dataclass(frozen=True)
class Problem:
    """One kind of bad value in one column."""

    column: str
    what: str
    rows: int
    examples: list[int]
    """1-based numbers of offending data rows (row 1 is the first row after a CSV header)."""

    def __str__(self) -> str:
        shown = ", ".join(str(r) for r in self.examples)
        more = ", ..." if self.rows > len(self.examples) else ""
        return f"{self.column}: {self.rows:,} row(s) {self.what} (rows {shown}{more})"


@dataclass
class ValidationReport:
    """What the check of a file found, and what was kept."""

    source: str
    rows_read: int | None = None
    """None until the rows are read (a file with missing columns is not)."""
    problems: list[Problem] = field(default_factory=list)
    fatal: list[str] = field(default_factory=list)
    """Problems no row dropping can fix (missing columns, too little data)."""
    extra_columns: list[str] = field(default_factory=list)
    rows_dropped: int = 0
    rows_kept: int = 0

    def text(self) -> str:
        """The report as a user reads it."""
        read = "not read" if self.rows_read is None else f"{self.rows_read:,} rows read"
        lines = [f"order history {self.source}: {read}"]
        if self.extra_columns:
            lines.append(f"  ignored extra columns: {', '.join(self.extra_columns)}")
        lines += [f"  - {problem}" for problem in self.problems]
        lines += [f"  - {message}" for message in self.fatal]
        if self.rows_dropped:
            lines.append(
                f"  --drop-invalid: dropped {self.rows_dropped:,} invalid row(s), "
                f"kept {self.rows_kept:,}"
            )
        return "\n".join(lines)


@dataclass(frozen=True)
class DataSource:
    """Where the orders came from: path, format, files and their combined sha256."""

    path: str
    format: str
    files: list[str]
    sha256: str


def resolve_files(path: Path) -> tuple[str, list[Path]]:
    """(format, files) of a CSV file, a Parquet file or a directory of Parquet files."""
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix in {".parquet", ".pq"})
        if not files:
            raise OrderHistoryError(f"{path}: directory holds no .parquet files")
        return "parquet", files
    if not path.is_file():
        raise OrderHistoryError(f"{path}: no such file or directory")
    suffixes = "".join(path.suffixes[-2:]).lower()
    if path.suffix.lower() in {".parquet", ".pq"}:
        return "parquet", [path]
    if path.suffix.lower() == ".csv" or suffixes in {".csv.gz", ".csv.bz2", ".csv.zst"}:
        return "csv", [path]
    raise OrderHistoryError(
        f"{path}: unknown format (expected .csv, .csv.gz, .parquet or a directory of .parquet)"
    )


def fingerprint_files(files: list[Path], root: Path) -> str:
    """sha256 over each file's path relative to ``root`` and its bytes, in sorted order."""
    digest = hashlib.sha256()
    for file in files:
        digest.update(str(file.relative_to(root) if file != root else file.name).encode())
        with file.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def _file_columns(fmt: str, files: list[Path]) -> list[str]:
    try:
        if fmt == "parquet":
            names: list[str] = []
            for file in files:
                names += [n for n in pq.read_schema(file).names if n not in names]
            return names
        reader = pa_csv.open_csv(files[0])
        names = list(reader.schema.names)
        reader.close()
        return names
    except (pa.ArrowInvalid, OSError) as exc:
        raise OrderHistoryError(f"{files[0]}: cannot read as {fmt}: {exc}") from None


def _missing_columns(columns: list[str]) -> tuple[list[str], list[str]]:
    """(messages for missing schema columns, extra columns)."""
    extra = [c for c in columns if c not in ORDER_HISTORY_SCHEMA]
    messages = []
    for name in ORDER_HISTORY_SCHEMA:
        if name in columns:
            continue
        near = difflib.get_close_matches(name, extra, n=1, cutoff=0.75) or [
            c for c in extra if c.strip().lower() == name
        ]
        hint = f" (found {near[0]!r}: misspelt?)" if near else ""
        messages.append(f"missing column {name!r}{hint}: {ORDER_HISTORY_SCHEMA[name]}")
    return messages, extra


def _read_table(fmt: str, files: list[Path]) -> pa.Table:
    columns = list(ORDER_HISTORY_SCHEMA)
    try:
        if fmt == "parquet":
            tables = [pq.read_table(f, columns=columns) for f in files]
            return pa.concat_tables(tables, promote_options="permissive")
        # Ids stay text even when they look numeric; everything else is inferred, and a column
        # with any unparseable value comes back as text, checked value by value below.
        convert = pa_csv.ConvertOptions(
            include_columns=columns,
            column_types={"restaurant_id": pa.string(), "driver_id": pa.string()},
            strings_can_be_null=True,
        )
        return pa_csv.read_csv(files[0], convert_options=convert)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as exc:
        raise OrderHistoryError(f"cannot read {files[0]} as {fmt}: {exc}") from None


def _as_timestamps(column: pa.ChunkedArray) -> pd.Series:
    """UTC timestamps in microseconds (whatever the file's unit: files mix s, ms, us, ns)."""
    return _parse_timestamps(column).dt.as_unit("us")


def _parse_timestamps(column: pa.ChunkedArray) -> pd.Series:
    if pa.types.is_timestamp(column.type):
        values = column.to_pandas()
        return values.dt.tz_convert("UTC") if values.dt.tz else values.dt.tz_localize("UTC")
    if pa.types.is_date(column.type):
        return pd.to_datetime(column.to_pandas()).dt.tz_localize("UTC")
    text = column.cast(pa.string()).to_pandas()
    return pd.to_datetime(text, utc=True, errors="coerce", format="ISO8601")


def _as_numbers(column: pa.ChunkedArray) -> tuple[pd.Series, pd.Series]:
    """(float values, mask of values that are present but not numbers)."""
    if pa.types.is_boolean(column.type):
        return column.to_pandas().astype("float64"), pd.Series(False, index=range(len(column)))
    if pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
        values = column.to_pandas().astype("float64")
        return values, pd.Series(False, index=values.index)
    text = column.cast(pa.string()).to_pandas()
    lowered = text.str.strip().str.lower()
    text = text.mask(lowered == "true", "1").mask(lowered == "false", "0")
    values = pd.to_numeric(text, errors="coerce").astype("float64")
    not_numbers = values.isna() & text.notna() & ~lowered.isin(["nan", "inf", "-inf", "infinity"])
    values = values.mask(lowered.isin(["inf", "infinity"]), np.inf)
    values = values.mask(lowered == "-inf", -np.inf)
    return values, not_numbers


def _as_ids(column: pa.ChunkedArray) -> pd.Series:
    return column.cast(pa.string()).dictionary_encode().to_pandas()


class _Checker:
    """Collects per-row problems as boolean masks, reported with examples."""

    def __init__(self, n_rows: int) -> None:
        self.bad = np.zeros(n_rows, dtype=bool)
        self.problems: list[Problem] = []

    def check(self, column: str, what: str, mask: pd.Series | np.ndarray) -> None:
        mask = np.asarray(mask, dtype=bool)
        count = int(mask.sum())
        if count:
            examples = (np.flatnonzero(mask)[:SAMPLE_ROWS] + 1).tolist()
            self.problems.append(Problem(column, what, count, examples))
            self.bad |= mask


def _check_rows(table: pa.Table) -> tuple[pd.DataFrame, _Checker]:
    checker = _Checker(table.num_rows)
    created_at = _as_timestamps(table["created_at"])
    raw_created = table["created_at"].is_null().to_numpy(zero_copy_only=False)
    checker.check("created_at", "empty", raw_created)
    checker.check("created_at", "not a timestamp", created_at.isna().to_numpy() & ~raw_created)

    frame = pd.DataFrame({"created_at": created_at})
    for name in ("restaurant_id", "driver_id"):
        ids = _as_ids(table[name])
        # Checked once per distinct id, then mapped to rows through the category codes.
        codes = ids.cat.codes.to_numpy()
        text = pd.Series(ids.cat.categories, dtype="string")
        empty = text.str.strip().str.len() == 0
        too_long = text.str.len() > ENTITY_ID_MAX_LENGTH
        bad_chars = ~text.str.fullmatch(ENTITY_ID_PATTERN).fillna(False) & ~empty
        checker.check(name, "empty", (codes == -1) | np.isin(codes, np.flatnonzero(empty)))
        for what, per_category in (
            (f"longer than {ENTITY_ID_MAX_LENGTH} characters", too_long),
            ("with characters outside A-Z a-z 0-9 _ . : -", bad_chars & ~too_long),
        ):
            flagged = np.flatnonzero(per_category.to_numpy())
            checker.check(name, what, np.isin(codes, flagged))
        frame[name] = ids

    bounds = {
        "distance_km": DISTANCE_KM_RANGE,
        "order_value": ORDER_VALUE_RANGE,
        "delivery_time_min": DELIVERY_TIME_MIN_RANGE,
        "is_peak_hour": (0, 1),
    }
    for name, (low, high) in bounds.items():
        values, not_numbers = _as_numbers(table[name])
        missing = values.isna() & ~not_numbers
        checker.check(name, "not a number", not_numbers)
        checker.check(name, "empty or NaN", missing)
        checker.check(name, "infinite", np.isinf(values))
        finite = np.isfinite(values)
        checker.check(name, f"outside {low}-{high}", finite & ((values < low) | (values > high)))
        if name == "is_peak_hour":
            checker.check(name, "not 0 or 1", finite & (values > 0) & (values < 1))
        frame[name] = values
    frame["is_peak_hour"] = frame["is_peak_hour"].fillna(0).round().astype("int64")

    # Same order twice (every schema column equal): a double-counted export, not two orders.
    duplicated = frame.duplicated(keep="first").to_numpy()
    checker.check("(all columns)", "duplicating an earlier row", duplicated & ~checker.bad)
    return frame, checker


def read_order_history(
    path: str | Path,
    *,
    drop_invalid: bool = False,
    min_rows: int = 1000,
    min_days: float = 14.0,
) -> tuple[pd.DataFrame, ValidationReport, DataSource]:
    """Read and check an order history; raise :class:`OrderHistoryError` with the full report.

    Returns the orders sorted by time, in the training code's names (``order_ts``,
    ``delivery_time_minutes``), the report, and the source's fingerprint. With
    ``drop_invalid`` rows with bad values are dropped and counted instead of failing; missing
    columns and too few rows or days still fail.
    """
    root = Path(path)
    fmt, files = resolve_files(root)
    report = ValidationReport(source=str(root))
    missing, report.extra_columns = _missing_columns(_file_columns(fmt, files))
    if missing:
        report.fatal += missing
        raise OrderHistoryError(report.text())

    size_mib = sum(f.stat().st_size for f in files) / 2**20
    logger.info("reading %s (%d %s file(s), %.0f MiB)", root, len(files), fmt, size_mib)
    started = time.perf_counter()
    table = _read_table(fmt, files)
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
    frame, checker = _check_rows(table)
    del table
    report.problems = checker.problems
    logger.info("checked %s rows in %.1f s", f"{len(frame):,}", time.perf_counter() - started)
    if checker.problems and drop_invalid:
        report.rows_dropped = int(checker.bad.sum())
        frame = frame[~checker.bad]
    report.rows_kept = len(frame)

    if len(frame) < min_rows:
        report.fatal.append(f"too few valid rows: {len(frame):,} (need at least {min_rows:,})")
    if len(frame):
        span_days = (frame["created_at"].max() - frame["created_at"].min()) / pd.Timedelta(days=1)
        if span_days < min_days:
            report.fatal.append(
                f"too few days: the orders span {span_days:.1f} days (need at least {min_days:g} "
                "for the time splits)"
            )
    if report.fatal or (report.problems and not drop_invalid):
        if report.problems and not drop_invalid:
            report.fatal.append("fix the rows above, or pass --drop-invalid to train without them")
        raise OrderHistoryError(report.text())

    frame = frame[list(ORDER_HISTORY_SCHEMA)].rename(columns=INTERNAL_NAMES)
    frame["is_peak_hour"] = frame["is_peak_hour"].astype("int64")
    for name in ("restaurant_id", "driver_id"):
        frame[name] = frame[name].cat.remove_unused_categories()
    frame = frame.sort_values("order_ts", kind="stable").reset_index(drop=True)
    source = DataSource(
        path=str(root.resolve()),
        format=fmt,
        files=[str(f.relative_to(root)) if f != root else f.name for f in files],
        sha256=fingerprint_files(files, root),
    )
    return frame, report, source


def describe_schema() -> list[dict[str, Any]]:
    """The schema as rows (column, meaning), for the model card and the docs."""
    return [{"column": k, "holds": v} for k, v in ORDER_HISTORY_SCHEMA.items()]
