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

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from models.contract import ENTITY_ID_MAX_LENGTH, ENTITY_ID_PATTERN, default_contract

# TEMPORARY (issue 23 in progress): the default contract's bounds, until the check is driven
# by the contract.
_C = default_contract()
DISTANCE_KM_RANGE = (_C.fields["distance_km"].minimum, _C.fields["distance_km"].maximum)  # type: ignore[union-attr]
ORDER_VALUE_RANGE = (_C.fields["order_value"].minimum, _C.fields["order_value"].maximum)  # type: ignore[union-attr]
DELIVERY_TIME_MIN_RANGE = (_C.target.minimum, _C.target.maximum)

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


def _file_columns(fmt: str, files: list[Path]) -> tuple[list[str], list[str]]:
    """(columns of the data, fatal problems: a schema column twice in a file, or missing
    from some files of a directory)."""
    per_file: dict[Path, list[str]] = {}
    for file in files:
        try:
            if fmt == "parquet":
                per_file[file] = list(pq.read_schema(file).names)
            else:
                reader = pa_csv.open_csv(file)
                per_file[file] = list(reader.schema.names)
                reader.close()
        except (pa.ArrowException, OSError) as exc:
            raise OrderHistoryError(f"{file}: cannot read as {fmt}: {exc}") from None
    names: list[str] = []
    fatal = []
    for file, columns in per_file.items():
        names += [n for n in columns if n not in names]
        for name in ORDER_HISTORY_SCHEMA:
            if columns.count(name) > 1:
                fatal.append(f"{file.name}: column {name!r} appears {columns.count(name)} times")
    if len(files) > 1:
        for name in ORDER_HISTORY_SCHEMA:
            lacking = [f.name for f, cols in per_file.items() if name not in cols]
            if name in names and lacking:
                shown = ", ".join(lacking[:SAMPLE_ROWS]) + (", ..." if len(lacking) > 5 else "")
                fatal.append(f"column {name!r} missing from {len(lacking)} file(s): {shown}")
    return names, fatal


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


def _normalised(table: pa.Table) -> pa.Table:
    """One type per column whatever the file wrote: ids as text, numbers and flags as float64,
    times as UTC microseconds; anything else as text, checked value by value later. Files of
    one directory can then be joined, and a column of an unusable type (a list, a struct,
    bytes that are not UTF-8) is reported, not a traceback."""
    columns = {}
    for name in table.column_names:
        column = table[name]
        kind = column.type
        if pa.types.is_dictionary(kind):
            column, kind = column.cast(kind.value_type), kind.value_type
        if name in ("restaurant_id", "driver_id"):
            target = pa.string()
        elif name == "created_at" and pa.types.is_timestamp(kind):
            target = pa.timestamp("us", tz=kind.tz or "UTC")
        elif name == "created_at" and pa.types.is_date(kind):
            target = pa.timestamp("us")
        elif name != "created_at" and (
            pa.types.is_integer(kind)
            or pa.types.is_floating(kind)
            or pa.types.is_decimal(kind)
            or pa.types.is_boolean(kind)
        ):
            target = pa.float64()
        else:
            target = pa.string()
        try:
            column = column.cast(target, safe=False)
            if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
                column.validate(full=True)  # the cast does not check the bytes are UTF-8
            if name == "created_at" and pa.types.is_timestamp(target):
                # Naive times are UTC (the schema's rule); zoned ones are converted to it.
                column = column.cast(pa.timestamp("us", tz=target.tz or "UTC"))
        except (pa.ArrowException, ValueError) as exc:
            raise OrderHistoryError(
                f"column {name!r} holds {kind}, which cannot be read as "
                f"{ORDER_HISTORY_SCHEMA[name]} ({exc})"
            ) from None
        columns[name] = column
    return pa.table(columns)


def _read_table(fmt: str, files: list[Path]) -> pa.Table:
    columns = list(ORDER_HISTORY_SCHEMA)
    tables = []
    for file in files:
        try:
            if fmt == "parquet":
                table = pq.read_table(file, columns=columns)
            else:
                # Ids stay text even when they look numeric; everything else is inferred, and a
                # column with any unparseable value comes back as text, checked value by value
                # below. Only an empty cell is missing: "NA" or "null" are valid ids.
                convert = pa_csv.ConvertOptions(
                    include_columns=columns,
                    column_types={"restaurant_id": pa.string(), "driver_id": pa.string()},
                    null_values=[""],
                    strings_can_be_null=True,
                )
                table = pa_csv.read_csv(file, convert_options=convert)
            tables.append(_normalised(table.select(columns)))
        except (pa.ArrowException, OSError) as exc:
            raise OrderHistoryError(f"cannot read {file} as {fmt}: {exc}") from None
        except OrderHistoryError as exc:
            raise OrderHistoryError(f"{file}: {exc}") from None
    if len(tables) == 1:
        return tables[0]
    # Files that disagree on a column's type (numbers in one, text in another) meet as text.
    for name in columns:
        if len({t.schema.field(name).type for t in tables}) > 1:
            tables = [
                t.set_column(t.schema.get_field_index(name), name, t[name].cast(pa.string()))
                for t in tables
            ]
    return pa.concat_tables(tables)


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
    peak = frame["is_peak_hour"].to_numpy()
    frame["is_peak_hour"] = np.where(np.isfinite(peak), peak, 0).round().astype("int64")

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
    columns, column_problems = _file_columns(fmt, files)
    missing, report.extra_columns = _missing_columns(columns)
    if missing or column_problems:
        report.fatal += missing + column_problems
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
