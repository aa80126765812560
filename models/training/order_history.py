"""Read a user's order history (CSV, Parquet, or a directory of Parquet) and check every row
against a feature contract.

The file holds one row per delivered order with the contract's columns
(:func:`order_history_schema`): the order time (``contract.timestamp.column``), every field of
the contract, and the target (``contract.target.column``). Reading is columnar (pyarrow): only
those columns are read, ids and categories become dictionary-encoded categoricals, so memory
grows with the rows times the contract's columns, not with the file's width.

Every check runs before anything is trained and all of them are reported at once: a user
fixing an export should see every problem in one run, not one per run.
"""

from __future__ import annotations

import difflib
import hashlib
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from models.contract import (
    ENTITY_ID_MAX_LENGTH,
    ENTITY_ID_PATTERN,
    BooleanField,
    CategoryField,
    EntityField,
    FeatureContract,
    IntegerField,
    NumberField,
    default_contract,
)
from models.features import ORDER_TS, TARGET
from models.training.dataset import ORDER_KEY, order_keys, sort_orders

logger = logging.getLogger(__name__)

SAMPLE_ROWS = 5
"""Offending row numbers shown per problem."""
SAMPLE_VALUES = 5
"""Offending values shown per problem (a category's unknown values)."""
SHOWN_ALLOWED_VALUES = 30
"""A category's allowed values listed in a problem (the rest are counted)."""
ORDER_ID_COLUMNS = ("order_id", "prediction_id")
"""Columns read as the order's id, the first a file has: ``order_id`` (a warehouse export's
row id; ``make contract`` leaves it out of the features) or ``prediction_id`` (a label export:
one row per labelled prediction). The contract has no notion of a row id, so the name decides.
The id is never a feature: it makes duplicated orders visible and orders the orders that share
a timestamp (``dataset.ORDER_KEY``)."""


class OrderHistoryError(ValueError):
    """The order history cannot be trained on; ``str()`` is the whole report."""


def order_history_schema(contract: FeatureContract) -> dict[str, str]:
    """The columns a training file of ``contract`` must have, in order (the timestamp, every
    field, the target), and what each must hold. Shown in error messages and recorded with
    the model."""
    schema = {contract.timestamp.column: contract.timestamp.description}
    for name, spec in contract.fields.items():
        schema[name] = _describe(spec)
    target = contract.target
    schema[target.column] = (
        f"{target.description}, number {_number(target.minimum)}-{_number(target.maximum)}"
    )
    return schema


def _number(value: float) -> str:
    """``50.0`` -> ``50``, ``0.1`` -> ``0.1``: bounds as a person writes them."""
    value = float(value)
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)


def _truthy_range(spec: Any) -> bool:
    """True for fields whose file values may be written true/false: booleans, and integers
    bounded within 0..1 (a 0/1 flag declared as an integer)."""
    if isinstance(spec, BooleanField):
        return True
    return isinstance(spec, IntegerField) and spec.minimum >= 0 and spec.maximum <= 1


def _allowed_text(spec: CategoryField) -> str:
    shown = ", ".join(str(v) for v in spec.values[:SHOWN_ALLOWED_VALUES])
    more = len(spec.values) - SHOWN_ALLOWED_VALUES
    return shown + (f", ... ({more} more)" if more > 0 else "")


def _describe(spec: Any) -> str:
    if isinstance(spec, EntityField):
        what = f"id, 1-{ENTITY_ID_MAX_LENGTH} characters of A-Z a-z 0-9 _ . : -"
    elif isinstance(spec, CategoryField):
        what = f"one of: {_allowed_text(spec)}"
        if spec.on_unseen == "other":
            what += f" (any other value counts as {spec.other_value!r})"
    elif _truthy_range(spec):
        what = "0 or 1 (true/false accepted)"
    elif isinstance(spec, IntegerField):
        what = f"whole number, {_number(spec.minimum)}-{_number(spec.maximum)}"
    else:
        what = f"number, {_number(spec.minimum)}-{_number(spec.maximum)}"
    if spec.description:
        what = f"{spec.description}: {what}"
    if not spec.required:
        default = getattr(spec, "default", None)
        what += f"; optional (absent or empty: {default!r})"
    return what


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


@dataclass(frozen=True)
class Note:
    """Rows taken as the contract says rather than as the file wrote them: an optional field's
    empty cells given its default, a category's unseen values mapped to ``other``."""

    column: str
    what: str
    rows: int

    def __str__(self) -> str:
        return f"{self.column}: {self.rows:,} row(s) {self.what}"


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
    absent_optional: dict[str, Any] = field(default_factory=dict)
    """Optional fields whose column the file lacks -> the default every row takes."""
    notes: list[Note] = field(default_factory=list)
    """Counted over the kept rows."""
    rows_dropped: int = 0
    rows_kept: int = 0
    id_column: str | None = None
    """The column read as the order id (:data:`ORDER_ID_COLUMNS`), if the file has one."""
    duplicates_dropped: int = 0
    """Rows repeating an earlier row with the same id and the same values (an order exported
    twice): dropped, counted, whatever ``--drop-invalid`` says."""

    def text(self) -> str:
        """The report as a user reads it."""
        read = "not read" if self.rows_read is None else f"{self.rows_read:,} rows read"
        lines = [f"order history {self.source}: {read}"]
        if self.id_column is not None:
            lines.append(
                f"  order id column {self.id_column!r}: one order per id, and the tie-break "
                "among orders of equal time"
            )
        if self.extra_columns:
            lines.append(f"  ignored extra columns: {', '.join(self.extra_columns)}")
        if self.duplicates_dropped:
            lines.append(
                f"  dropped {self.duplicates_dropped:,} row(s) repeating an earlier row with the "
                f"same {self.id_column} and the same values (an order exported twice)"
            )
        lines += [
            f"  optional column {name!r} absent: every row takes its default {default!r}"
            for name, default in self.absent_optional.items()
        ]
        lines += [f"  {note}" for note in self.notes]
        lines += [f"  - {problem}" for problem in self.problems]
        lines += [f"  - {message}" for message in self.fatal]
        if self.rows_dropped:
            lines.append(
                f"  --drop-invalid: dropped {self.rows_dropped:,} invalid row(s), "
                f"kept {self.rows_kept:,}"
            )
        return "\n".join(lines)

    def mapped_to_other(self) -> dict[str, int]:
        """Per category field with ``on_unseen: other``: kept rows whose value was mapped."""
        return {n.column: n.rows for n in self.notes if n.what.startswith(_MAPPED)}


_MAPPED = "with a value the contract does not list, mapped to"


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


def _file_columns(
    fmt: str, files: list[Path], schema: dict[str, str]
) -> tuple[list[str], list[str], set[str]]:
    """(columns of the data, fatal problems: a declared column twice in a file, or missing
    from some files of a directory; the columns every file has exactly once)."""
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
        for name in schema:
            if columns.count(name) > 1:
                fatal.append(f"{file.name}: column {name!r} appears {columns.count(name)} times")
    if len(files) > 1:
        for name in schema:
            lacking = [f.name for f, cols in per_file.items() if name not in cols]
            if name in names and lacking:
                shown = ", ".join(lacking[:SAMPLE_ROWS]) + (", ..." if len(lacking) > 5 else "")
                fatal.append(f"column {name!r} missing from {len(lacking)} file(s): {shown}")
    everywhere = {n for n in names if all(cols.count(n) == 1 for cols in per_file.values())}
    return names, fatal, everywhere


def _missing_columns(
    columns: list[str], contract: FeatureContract, schema: dict[str, str]
) -> tuple[list[str], list[str], dict[str, Any]]:
    """(messages for missing declared columns, extra columns, absent optional fields -> their
    default)."""
    extra = [c for c in columns if c not in schema]
    messages = []
    absent: dict[str, Any] = {}
    for name in schema:
        if name in columns:
            continue
        spec = contract.fields.get(name)
        if spec is not None and not spec.required:
            absent[name] = getattr(spec, "default", None)
            continue
        near = difflib.get_close_matches(name, extra, n=1, cutoff=0.75) or [
            c for c in extra if c.strip().lower() == name
        ]
        hint = f" (found {near[0]!r}: misspelt?)" if near else ""
        messages.append(f"missing column {name!r}{hint}: {schema[name]}")
    return messages, extra, absent


def _is_number_type(kind: pa.DataType) -> bool:
    return (
        pa.types.is_integer(kind)
        or pa.types.is_floating(kind)
        or pa.types.is_decimal(kind)
        or pa.types.is_boolean(kind)
    )


def _normalised(
    table: pa.Table, contract: FeatureContract, schema: dict[str, str], id_column: str | None
) -> pa.Table:
    """One type per column whatever the file wrote: ids and categories as text, numbers and
    flags as float64, times as UTC microseconds; anything else as text, checked value by value
    later. Files of one directory can then be joined, and a column of an unusable type (a
    list, a struct, bytes that are not UTF-8) is reported, not a traceback."""
    timestamp = contract.timestamp.column
    columns = {}
    for name in table.column_names:
        column = table[name]
        kind = column.type
        if pa.types.is_dictionary(kind):
            column, kind = column.cast(kind.value_type), kind.value_type
        spec = contract.fields.get(name)
        if isinstance(spec, EntityField | CategoryField) or name == id_column:
            target = pa.string()
        elif name == timestamp and pa.types.is_timestamp(kind):
            target = pa.timestamp("us", tz=kind.tz or "UTC")
        elif name == timestamp and pa.types.is_date(kind):
            target = pa.timestamp("us")
        elif name != timestamp and _is_number_type(kind):
            target = pa.float64()
        else:
            target = pa.string()
        try:
            column = column.cast(target, safe=False)
            if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
                column.validate(full=True)  # the cast does not check the bytes are UTF-8
            if name == timestamp and pa.types.is_timestamp(target):
                # Naive times are UTC (the schema's rule); zoned ones are converted to it.
                column = column.cast(pa.timestamp("us", tz=target.tz or "UTC"))
        except (pa.ArrowException, ValueError) as exc:
            raise OrderHistoryError(
                f"column {name!r} holds {kind}, which cannot be read as "
                f"{schema.get(name, 'an order id (text)')} ({exc})"
            ) from None
        columns[name] = column
    return pa.table(columns)


def _read_table(
    fmt: str,
    files: list[Path],
    columns: list[str],
    contract: FeatureContract,
    schema: dict[str, str],
    id_column: str | None = None,
) -> pa.Table:
    text_columns = {
        name: pa.string()
        for name in columns
        if isinstance(contract.fields.get(name), EntityField | CategoryField) or name == id_column
    }
    tables = []
    for file in files:
        try:
            if fmt == "parquet":
                table = pq.read_table(file, columns=columns)
            else:
                # Ids and categories stay text even when they look numeric (a category of
                # 1/2/3 is matched as text below); everything else is inferred, and a column
                # with any unparseable value comes back as text, checked value by value
                # below. Only an empty cell is missing: "NA" or "null" are valid ids.
                convert = pa_csv.ConvertOptions(
                    include_columns=columns,
                    column_types=text_columns,
                    null_values=[""],
                    strings_can_be_null=True,
                )
                table = pa_csv.read_csv(file, convert_options=convert)
            tables.append(_normalised(table.select(columns), contract, schema, id_column))
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


def _as_numbers(column: pa.ChunkedArray, truthy: bool) -> tuple[pd.Series, pd.Series]:
    """(float values, mask of values that are present but not numbers). With ``truthy``,
    ``true``/``false`` text reads as 1/0."""
    if pa.types.is_boolean(column.type):
        return column.to_pandas().astype("float64"), pd.Series(False, index=range(len(column)))
    if pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
        values = column.to_pandas().astype("float64")
        return values, pd.Series(False, index=values.index)
    text = column.cast(pa.string()).to_pandas()
    lowered = text.str.strip().str.lower()
    if truthy:
        text = text.mask(lowered == "true", "1").mask(lowered == "false", "0")
    values = pd.to_numeric(text, errors="coerce").astype("float64")
    not_numbers = values.isna() & text.notna() & ~lowered.isin(["nan", "inf", "-inf", "infinity"])
    values = values.mask(lowered.isin(["inf", "infinity"]), np.inf)
    values = values.mask(lowered == "-inf", -np.inf)
    return values, not_numbers


def _as_text_categories(column: pa.ChunkedArray) -> pd.Series:
    """Dictionary-encoded text (every value of one column checked once, not once per row)."""
    return column.cast(pa.string()).dictionary_encode().to_pandas()


def _whole_number_text(text: str) -> str | None:
    """``"1.0"`` -> ``"1"``; None for text that is not a whole number."""
    try:
        number = float(text)
    except ValueError:
        return None
    return str(int(number)) if math.isfinite(number) and number.is_integer() else None


class _Checker:
    """Collects per-row problems as boolean masks, reported with examples, and notes (rows
    taken as the contract says), counted over the kept rows at the end."""

    def __init__(self, n_rows: int) -> None:
        self.bad = np.zeros(n_rows, dtype=bool)
        self.problems: list[Problem] = []
        self.notes: list[tuple[str, str, np.ndarray]] = []

    def check(self, column: str, what: str, mask: pd.Series | np.ndarray) -> None:
        mask = np.asarray(mask, dtype=bool)
        count = int(mask.sum())
        if count:
            examples = (np.flatnonzero(mask)[:SAMPLE_ROWS] + 1).tolist()
            self.problems.append(Problem(column, what, count, examples))
            self.bad |= mask

    def note(self, column: str, what: str, mask: np.ndarray) -> None:
        if mask.any():
            self.notes.append((column, what, mask))

    def counted_notes(self, kept: np.ndarray) -> list[Note]:
        counted = [Note(c, what, int((mask & kept).sum())) for c, what, mask in self.notes]
        return [note for note in counted if note.rows]


def _check_entity(name: str, column: pa.ChunkedArray, checker: _Checker) -> pd.Series:
    ids = _as_text_categories(column)
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
    return ids


def _check_category(
    name: str, spec: CategoryField, column: pa.ChunkedArray, checker: _Checker
) -> pd.Series:
    """The column as a categorical over the contract's levels (as text: ``str(value)``, the
    form ``models.features.category_codes`` maps). A file value matches a declared value when
    its text is the same, or -- for numbers such as 1/2/3 -- when it is the same whole number
    (``1``, ``"1"`` and ``1.0`` are one value)."""
    levels = [str(v) for v in spec.levels()]
    # Every level matches itself: "other" written back by the label export is not unseen.
    index = {text: i for i, text in enumerate(levels)}
    values = _as_text_categories(column)
    distinct = [str(v) for v in values.cat.categories]
    per_distinct = np.full(len(distinct) + 1, -1, dtype=np.int64)  # last: missing (code -1)
    empty_distinct, unseen = [], []
    for i, text in enumerate(distinct):
        if not text.strip():
            empty_distinct.append(i)
            continue
        level = index.get(text)
        if level is None:
            whole = _whole_number_text(text)
            level = index.get(whole) if whole is not None else None
        if level is None:
            unseen.append(i)
        else:
            per_distinct[i] = level
    codes = values.cat.codes.to_numpy()
    empty = (codes == -1) | np.isin(codes, empty_distinct)
    unseen_rows = np.isin(codes, unseen)
    if unseen:
        found = ", ".join(repr(distinct[i]) for i in unseen[:SAMPLE_VALUES])
        more = ", ..." if len(unseen) > SAMPLE_VALUES else ""
        if spec.on_unseen == "other":
            per_distinct[unseen] = levels.index(str(spec.other_value))
            checker.note(
                name, f"{_MAPPED} {spec.other_value!r} (values {found}{more})", unseen_rows
            )
        else:
            checker.check(
                name,
                f"not one of the contract's values ({_allowed_text(spec)}): found {found}{more}",
                unseen_rows,
            )
    row_levels = per_distinct[codes]  # code -1 (missing) takes the last entry: -1
    if spec.required:
        checker.check(name, "empty", empty)
    else:
        row_levels[empty] = levels.index(str(spec.default))
        checker.note(name, f"empty, given the default {spec.default!r}", empty)
    return pd.Series(pd.Categorical.from_codes(row_levels, categories=pd.Index(levels)))


def _check_numbers(
    name: str,
    spec: NumberField | IntegerField | BooleanField | None,
    bounds: tuple[float, float],
    column: pa.ChunkedArray,
    checker: _Checker,
) -> pd.Series:
    """A number, whole number or 0/1 column (``spec`` None: the target), as float64; whole
    kinds as int64."""
    low, high = bounds
    values, not_numbers = _as_numbers(column, truthy=_truthy_range(spec))
    missing = values.isna() & ~not_numbers
    checker.check(name, "not a number", not_numbers)
    if spec is None or spec.required:
        checker.check(name, "empty or NaN", missing)
    else:
        assert spec.default is not None  # the contract gives every optional field one
        values = values.mask(missing, float(spec.default))
        checker.note(name, f"empty, given the default {spec.default!r}", missing.to_numpy())
    checker.check(name, "infinite", np.isinf(values))
    finite = np.isfinite(values)
    checker.check(
        name,
        f"outside {_number(low)}-{_number(high)}",
        finite & ((values < low) | (values > high)),
    )
    if isinstance(spec, IntegerField | BooleanField):
        inside = finite & (values >= low) & (values <= high)
        what = "not 0 or 1" if _truthy_range(spec) else "not a whole number"
        checker.check(name, what, inside & (values != np.round(values)))
        whole = np.where(np.isfinite(values), values, 0).round().astype("int64")
        return pd.Series(whole, index=values.index)
    return values


def _constant_column(spec: Any, rows: int) -> pd.Series:
    """An absent optional field's column: its default on every row."""
    default: Any = spec.default  # the contract gives every optional field one
    if isinstance(spec, CategoryField):
        levels = [str(v) for v in spec.levels()]
        codes = np.full(rows, levels.index(str(default)), dtype=np.int64)
        return pd.Series(pd.Categorical.from_codes(codes, categories=pd.Index(levels)))
    if isinstance(spec, IntegerField | BooleanField):
        return pd.Series(np.full(rows, int(default)), dtype="int64")
    return pd.Series(np.full(rows, float(default)), dtype="float64")


def _check_rows(
    table: pa.Table, contract: FeatureContract, id_column: str | None = None
) -> tuple[pd.DataFrame, _Checker, pd.Series | None, np.ndarray]:
    """(the rows in the training code's names, the checker, the order ids if ``id_column``,
    the mask of rows repeating an earlier row with the same id and values: to drop)."""
    checker = _Checker(table.num_rows)
    ts = contract.timestamp.column
    order_times = _as_timestamps(table[ts])
    raw_missing = table[ts].is_null().to_numpy(zero_copy_only=False)
    checker.check(ts, "empty", raw_missing)
    checker.check(ts, "not a timestamp", order_times.isna().to_numpy() & ~raw_missing)

    frame = pd.DataFrame({ORDER_TS: order_times})
    for name, spec in contract.fields.items():
        if name not in table.column_names:  # an optional field the file does not have
            frame[name] = _constant_column(spec, table.num_rows)
        elif isinstance(spec, EntityField):
            frame[name] = _check_entity(name, table[name], checker)
        elif isinstance(spec, CategoryField):
            frame[name] = _check_category(name, spec, table[name], checker)
        else:
            bounds = (0.0, 1.0) if isinstance(spec, BooleanField) else (spec.minimum, spec.maximum)
            frame[name] = _check_numbers(name, spec, bounds, table[name], checker)
    target = contract.target
    frame[TARGET] = _check_numbers(
        target.column, None, (target.minimum, target.maximum), table[target.column], checker
    )

    repeated = np.zeros(len(frame), dtype=bool)
    if id_column is None:
        # Same order twice (every declared column equal): a double-counted export, not two orders.
        duplicated = frame.duplicated(keep="first").to_numpy()
        checker.check("(all columns)", "duplicating an earlier row", duplicated & ~checker.bad)
        return frame, checker, None, repeated
    ids = table[id_column].cast(pa.string()).to_pandas().astype("string")
    has_id = (ids.notna() & (ids.str.len() > 0)).to_numpy()
    # Rows without an id are told apart by their values, as in a file without ids.
    duplicated = frame.duplicated(keep="first").to_numpy() & ~has_id
    checker.check("(all columns)", "duplicating an earlier row", duplicated & ~checker.bad)
    if ids[has_id].duplicated().any():
        with_id = frame.assign(**{ORDER_KEY: ids})
        repeated = with_id.duplicated(keep="first").to_numpy() & has_id
        # One id, rows of different values: which is the order is unknown, so every row of
        # such an id is a problem (--drop-invalid drops them all, keeps none of the versions).
        versions = ids[has_id & ~repeated]
        conflicting = versions[versions.duplicated(keep=False)].unique()
        conflict = ids.isin(conflicting).fillna(False).to_numpy() & has_id
        if conflict.any():
            shown = ", ".join(repr(str(i)) for i in conflicting[:SAMPLE_VALUES])
            more = ", ..." if len(conflicting) > SAMPLE_VALUES else ""
            checker.check(
                id_column,
                f"sharing their id with a row of other values: {len(conflicting):,} id(s) "
                f"{shown}{more}",
                conflict,
            )
        repeated &= ~conflict
    return frame, checker, ids, repeated


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
    fmt, files = resolve_files(root)
    report = ValidationReport(source=str(root))
    columns, column_problems, everywhere = _file_columns(fmt, files, schema)
    missing, extra, report.absent_optional = _missing_columns(columns, contract, schema)
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
    table = _read_table(fmt, files, present, contract, schema, id_column)
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
    frame, checker, ids, repeated = _check_rows(table, contract, id_column)
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
