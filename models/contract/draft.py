"""Draft a feature contract from a user's order history (``make contract DATA=...``).

Each column of the file becomes a request field of the kind its values suggest -- or is left
out, with the reason written in the draft -- and the target and timestamp columns are detected
(or named with ``--target`` / ``--timestamp``). The draft is YAML text with comments saying what
was inferred from how many rows; it is validated with :func:`parse_contract` before it is
returned, so it trains as is. A person reviews and edits it; docs/contract.md is the reference.

The rules, in order, for each column other than the target and the timestamp:

- a name that is not a contract name (snake_case) is left out (the contract names the column);
- a time is left out (a request carries no order time; derive e.g. the hour in the export);
- numbers: one value -> left out; only 0 and 1 -> ``boolean``; whole numbers -> ``integer``,
  others -> ``number``, with the observed range widened by :data:`RANGE_MARGIN` of its width on
  each side (not below 0 for a column with no negative value); an ``*_id`` column of whole
  numbers is treated as ids (below); whole numbers all distinct -> left out (a row id); a column
  that follows the target almost exactly -> left out (known only after delivery);
- true/false text -> ``boolean``;
- text (and ids): an ``*_id`` column, or one with more distinct values than the cap, whose
  values are valid entity ids repeated at least :data:`ENTITY_MIN_MEDIAN_ORDERS` times (median)
  -> ``entity``; otherwise at most the cap of distinct values -> ``category``, its values by
  frequency, values in under :data:`RARE_SHARE` of rows left to ``on_unseen: other``; more
  values -> ``category`` of the frequent values if they cover :data:`CROPPED_CATEGORY_COVERAGE`
  of the rows, else left out (free text, or ids seen too rarely);
- a column empty in some rows is drafted optional with its typical value as the default; one
  empty in most rows is left out.
"""

from __future__ import annotations

import dataclasses
import math
import re
import textwrap
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import yaml

from models.contract.loading import ContractError, parse_contract
from models.contract.spec import (
    ENTITY_ID_MAX_LENGTH,
    ENTITY_ID_PATTERN,
    MAX_CATEGORY_VALUES,
    MAX_FIELDS,
    NAME_PATTERN,
    OTHER_VALUE_DEFAULT,
    FeatureContract,
)

DEFAULT_MAX_ROWS = 1_000_000
"""Rows the draft is inferred from: a larger file is sampled uniformly (read once, streamed)."""
DEFAULT_MAX_CATEGORIES = 50
"""Most values a text column may have to be drafted as a category."""
MAX_COLUMNS_READ = 4 * MAX_FIELDS
"""A wider file must name the columns to draft (``--columns``): the sample would not fit."""
RANGE_MARGIN = 0.10
"""Number and integer bounds: the observed range widened by this share of its width per side."""
RARE_SHARE = 0.001
"""A category value seen in fewer rows than this share is left to ``on_unseen: other``."""
ENTITY_MIN_MEDIAN_ORDERS = 5
"""An id column is an entity when its ids have at least this many orders each (median)."""
CROPPED_CATEGORY_COVERAGE = 0.95
"""Text with more values than the cap is still a category if the kept values cover this share."""
MOST_EMPTY_SHARE = 0.5
"""A column empty in more rows than this share is left out."""
LEAK_CORRELATION = 0.99
"""A numeric column this correlated with the target is left out (known after delivery)."""
MAX_BAD_SHARE = 0.01
"""A column is numeric if at most this share of its values are not numbers (reported)."""

TARGET_NAME = re.compile(
    r"^(actual_)?(delivery_time|delivery_duration|duration|minutes|time_taken|eta)"
)
"""Names a target column is detected by (a positive number column)."""
PREFERRED_TARGETS = ("delivery_time_min", "delivery_time_minutes", "delivery_time")
PREFERRED_TIMESTAMPS = (
    "created_at",
    "order_ts",
    "placed_at",
    "ordered_at",
    "order_time",
    "order_placed_at",
    "order_created_at",
)
"""Names a timestamp column is preferred by when the file has several times."""
ID_NAME = re.compile(r"(^|_)id$")
NOT_A_NUMBER_TEXT = re.compile(r"^0\d")
"""Text like ``007`` is a code, not the number 7 (leading zeros would be lost)."""
SAMPLE_SEED = 0


class DraftError(ValueError):
    """The file cannot be drafted; ``exit_code`` 2 asks the user for a flag (``--target``,
    ``--timestamp``, ``--columns``), 1 is anything else."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


# -- reading a bounded sample -----------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """A uniform sample of at most ``max_rows`` rows of an order history, one type per column:
    float64 / int64 / bool / timestamp (UTC) / string."""

    source: str
    format: str
    files: int
    columns: dict[str, pa.ChunkedArray]
    rows: int
    """Rows in the sample."""
    rows_total: int
    """Rows in the file(s)."""
    left_out: dict[str, str] = field(default_factory=dict)
    """Columns that cannot be drafted from their type or presence, with the reason."""
    head: bool = False
    """Only the first ``rows`` rows were read (``--head``), and the data had more."""
    totals: dict[str, ColumnTotals] = field(default_factory=dict)
    """Per column, what every row read holds (not only the sample's rows)."""

    @property
    def sampled(self) -> bool:
        """True when the file has more rows than the sample holds."""
        return self.rows < self.rows_total


TRACKED_VALUES = 4 * MAX_CATEGORY_VALUES
"""Distinct text values counted over the whole file; a column with more is counted in the
sample only (it is an id or free text, not a category)."""


@dataclass
class ColumnTotals:
    """Exact over every row read, not only the sampled ones: what the training check compares
    against (a bound or a category value seen only in unsampled rows would refuse rows)."""

    minimum: float | None = None
    maximum: float | None = None
    numeric: bool = True
    """Every value read so far is a number (text that parses, for CSV)."""
    integral: bool = True
    counts: dict[str, int] | None = field(default_factory=dict)
    """Text value -> rows; None once more than :data:`TRACKED_VALUES` distinct values."""

    def add(self, array: pa.Array) -> None:
        """Fold one batch's column in."""
        kind = array.type
        if pa.types.is_string(kind):
            if self.counts is not None:
                for item in pc.value_counts(array.drop_null()).to_pylist():
                    self.counts[item["values"]] = (
                        self.counts.get(item["values"], 0) + item["counts"]
                    )
                if len(self.counts) > TRACKED_VALUES:
                    self.counts = None
            if self.numeric:
                try:
                    array = array.cast(pa.float64())
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                    self.numeric = False
                    return
        else:
            self.counts = None  # text counts of a column some file types otherwise: not exact
            if not (pa.types.is_integer(kind) or pa.types.is_floating(kind)):
                self.numeric = False
                return
        if not self.numeric:
            return
        values = array.cast(pa.float64()).to_numpy(zero_copy_only=False)
        values = values[np.isfinite(values)]
        if values.size:
            low, high = float(values.min()), float(values.max())
            self.minimum = low if self.minimum is None else min(self.minimum, low)
            self.maximum = high if self.maximum is None else max(self.maximum, high)
            self.integral = self.integral and bool(np.all(values == np.round(values)))


class _Reservoir:
    """Bottom-k sampling: each row draws a random key, the ``capacity`` smallest keys are kept,
    so the sample is uniform over every row read while memory stays bounded."""

    def __init__(self, capacity: int, seed: int) -> None:
        self.capacity = capacity
        self.rng = np.random.default_rng(seed)
        self.pieces: list[tuple[np.ndarray, pa.Table]] = []
        self.kept = 0
        self.seen = 0
        self.threshold = 1.0

    def add(self, table: pa.Table) -> None:
        self.seen += table.num_rows
        keys = self.rng.random(table.num_rows)
        keep = keys < self.threshold
        if not keep.all():
            table, keys = table.filter(pa.array(keep)), keys[keep]
        if table.num_rows:
            self.pieces.append((keys, table))
            self.kept += table.num_rows
        if self.kept > self.capacity + self.capacity // 4:  # prune often: memory is the bound
            self._prune()

    def _prune(self) -> None:
        if self.kept <= self.capacity:
            return
        keys = np.concatenate([k for k, _ in self.pieces])
        self.threshold = float(np.partition(keys, self.capacity - 1)[self.capacity - 1])
        pieces = []
        for piece_keys, table in self.pieces:
            keep = piece_keys <= self.threshold
            if keep.any():
                pieces.append((piece_keys[keep], table.filter(pa.array(keep))))
        self.pieces = pieces
        self.kept = sum(len(k) for k, _ in pieces)

    def tables(self) -> list[pa.Table]:
        self._prune()
        return [table for _, table in self.pieces]


def read_sample(
    path: str | Path,
    *,
    max_rows: int = DEFAULT_MAX_ROWS,
    columns: Sequence[str] | None = None,
    seed: int = SAMPLE_SEED,
    head: bool = False,
) -> Sample:
    """Read a CSV file, a Parquet file or a directory of Parquet files (the forms
    ``make train DATA=`` takes) into a uniform sample of at most ``max_rows`` rows.

    Every row is read once, streamed, so memory is bounded by the sample, not the file. CSV
    columns are read as text and typed here, from all the sampled values, not from the first
    block. ``columns`` restricts the columns read. ``head`` reads only the first ``max_rows``
    rows instead: fast on a huge file, but what the rest holds is not seen.
    """
    from models.training.order_history import OrderHistoryError, resolve_files

    if max_rows < 1:
        raise DraftError("max_rows must be at least 1", exit_code=2)
    root = Path(path)
    try:
        fmt, files = resolve_files(root)
    except OrderHistoryError as exc:
        raise DraftError(str(exc)) from None
    reservoir = _Reservoir(max_rows, seed)
    per_file: list[list[str]] = []
    unusable: dict[str, str] = {}
    totals: dict[str, ColumnTotals] = {}
    cut = False  # --head stopped before the end of the data
    for file in files:
        if head and reservoir.seen >= max_rows:
            cut = True
            break
        try:
            names = _file_column_names(fmt, file)
            duplicated = sorted({n for n in names if names.count(n) > 1})
            if duplicated:
                raise DraftError(f"{file}: column(s) appearing twice: {', '.join(duplicated)}")
            wanted = [n for n in names if columns is None or n in columns]
            if columns is None and len(wanted) > MAX_COLUMNS_READ:
                raise DraftError(
                    f"{file}: {len(wanted)} columns; a contract declares at most {MAX_FIELDS} "
                    "fields: name the columns to draft with --columns a,b,c (with the target "
                    "and the timestamp, or pass --target / --timestamp)",
                    exit_code=2,
                )
            per_file.append(wanted)
            for batch in _batches(fmt, file, wanted):
                if head and reservoir.seen + batch.num_rows > max_rows:
                    cut = True
                    batch = batch.slice(0, max_rows - reservoir.seen)
                table, bad_types = _normalised(batch)
                unusable.update(bad_types)
                for name in table.column_names:
                    for chunk in table[name].chunks:
                        totals.setdefault(name, ColumnTotals()).add(chunk)
                reservoir.add(table)
                if cut:
                    break
        except (pa.ArrowException, OSError, UnicodeDecodeError) as exc:
            raise DraftError(f"{file}: cannot read as {fmt}: {exc}") from None
    if columns is not None:
        read = {n for names in per_file for n in names}
        unknown = [c for c in columns if c not in read]
        if unknown:
            raise DraftError(f"--columns: not in the file: {', '.join(unknown)}", exit_code=2)
    tables = reservoir.tables()
    if not tables:
        raise DraftError(f"{root}: no rows to draft from")
    ordered: list[str] = []
    for names in per_file:
        ordered += [n for n in names if n not in ordered]
    left_out = {name: f"cannot be used: it holds {kind}" for name, kind in unusable.items()}
    sample_columns = {}
    for name in ordered:
        if name in left_out:
            continue
        lacking = sum(name not in names for names in per_file)
        if lacking:
            left_out[name] = f"missing from {lacking} of the {len(files)} files"
            continue
        sample_columns[name] = _combined([t[name] for t in tables])
    return Sample(
        source=str(root),
        format=fmt,
        files=len(files),
        columns=sample_columns,
        rows=sum(t.num_rows for t in tables),
        rows_total=reservoir.seen,
        left_out=left_out,
        head=cut,
        totals={name: totals[name] for name in sample_columns},
    )


def _file_column_names(fmt: str, file: Path) -> list[str]:
    if fmt == "parquet":
        return list(pq.read_schema(file).names)
    reader = pa_csv.open_csv(file)
    try:
        return list(reader.schema.names)
    finally:
        reader.close()


def _batches(fmt: str, file: Path, columns: list[str]) -> Iterator[pa.RecordBatch]:
    if fmt == "parquet":
        yield from pq.ParquetFile(file).iter_batches(batch_size=65_536, columns=columns)
        return
    # Every column as text: pyarrow would type a column from its first block and fail on a
    # later one; the draft types each column from all the sampled values instead. Only an
    # empty cell is missing ("NA" may be a category value).
    convert = pa_csv.ConvertOptions(
        column_types={name: pa.string() for name in columns},
        include_columns=columns,
        null_values=[""],
        strings_can_be_null=True,
    )
    reader = pa_csv.open_csv(
        file, read_options=pa_csv.ReadOptions(block_size=1 << 22), convert_options=convert
    )
    try:
        yield from reader
    finally:
        reader.close()


def _normalised(batch: pa.RecordBatch) -> tuple[pa.Table, dict[str, str]]:
    """(the batch with one of five types per column, {column: type} of unusable columns)."""
    columns: dict[str, pa.Array] = {}
    unusable = {}
    for name in batch.schema.names:
        array = batch.column(name)
        kind = array.type
        if pa.types.is_dictionary(kind):
            array, kind = array.dictionary_decode(), kind.value_type
        if pa.types.is_integer(kind):
            array = array.cast(pa.int64(), safe=False)
        elif pa.types.is_floating(kind) or pa.types.is_decimal(kind):
            array = array.cast(pa.float64(), safe=False)
        elif pa.types.is_timestamp(kind):
            array = array.cast(pa.timestamp("us", tz=kind.tz or "UTC"))
            if kind.tz and kind.tz != "UTC":
                array = array.cast(pa.timestamp("us", tz="UTC"))
        elif pa.types.is_date(kind):
            array = array.cast(pa.timestamp("us")).cast(pa.timestamp("us", tz="UTC"))
        elif pa.types.is_boolean(kind):
            pass
        elif pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_null(kind):
            array = array.cast(pa.string())
        elif pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
            try:
                array = array.cast(pa.string())
                array.validate(full=True)
            except (pa.ArrowException, ValueError):
                unusable[name] = f"{kind} that is not UTF-8 text"
                continue
        else:
            unusable[name] = str(kind)
            continue
        columns[name] = array
    return pa.table(columns), unusable


def _combined(chunks: list[pa.ChunkedArray]) -> pa.ChunkedArray:
    """One column from the pieces of several files: files that disagree on its type meet as
    float64 (numbers), UTC times, or else text."""
    types = {c.type for c in chunks}
    if len(types) > 1:
        if all(pa.types.is_integer(t) or pa.types.is_floating(t) for t in types):
            chunks = [c.cast(pa.float64()) for c in chunks]
        elif all(pa.types.is_timestamp(t) for t in types):
            chunks = [c.cast(pa.timestamp("us", tz="UTC")) for c in chunks]
        else:
            chunks = [c.cast(pa.string()) for c in chunks]
    return pa.chunked_array([a for c in chunks for a in c.chunks], type=chunks[0].type)


# -- what each column holds --------------------------------------------------------------------


@dataclass(frozen=True)
class TextCounts:
    """How often each value of a text (or id) column occurs."""

    top: list[tuple[str, int]]
    """The most frequent values with their rows, most frequent first (at most
    :data:`TRACKED_VALUES`; ties by value)."""
    distinct: int
    present: int
    """Rows with a value."""
    median: float
    """Median rows per distinct value."""
    exact: bool
    """Counted over every row of the file (else over the sample)."""
    invalid_id: str | None
    """A value that is not a valid entity id, if any."""

    @classmethod
    def of(cls, values: Sequence[str], rows: np.ndarray, exact: bool) -> TextCounts:
        """Counts of ``values`` (distinct) occurring ``rows`` times each."""
        return cls.from_arrow(pa.array(list(values), type=pa.string()), rows, exact)

    @classmethod
    def from_arrow(cls, values: pa.Array, rows: np.ndarray, exact: bool) -> TextCounts:
        """:meth:`of` for an Arrow string array (vectorised: a million ids take a second)."""
        table = pa.table({"value": values, "rows": pa.array(rows, type=pa.int64())})
        order = pc.sort_indices(table, sort_keys=[("rows", "descending"), ("value", "ascending")])
        top = table.take(order[:TRACKED_VALUES])
        valid = pc.and_(
            pc.match_substring_regex(values, ENTITY_ID_PATTERN),
            pc.less_equal(pc.utf8_length(values), ENTITY_ID_MAX_LENGTH),
        )
        invalid = pc.filter(values, pc.invert(valid))
        return cls(
            top=list(zip(top["value"].to_pylist(), top["rows"].to_pylist(), strict=True)),
            distinct=len(values),
            present=int(rows.sum()),
            median=float(np.median(rows)) if len(rows) else 0.0,
            exact=exact,
            invalid_id=invalid[0].as_py() if len(invalid) else None,
        )


@dataclass
class Profile:
    """What a sampled column holds, typed from all its values."""

    name: str
    kind: str
    """``number`` (numeric), ``boolean``, ``time``, ``text`` or ``empty``."""
    rows: int
    missing: int
    numbers: np.ndarray | None = None
    """float64 per row (NaN where missing or not a number): numeric and boolean columns."""
    bool_text: bool = False
    """A boolean written true/false (else 0/1)."""
    not_numbers: int = 0
    not_number_examples: list[str] = field(default_factory=list)
    counts: TextCounts | None = None
    """The sample's value counts (text columns)."""
    times: pd.Series | None = None
    totals: ColumnTotals | None = None
    """The column over every row read (None: only the sample is known)."""
    scale: float = 1.0
    """Rows in the file per sampled row (a count in the sample times this estimates the
    file's)."""

    @property
    def present(self) -> int:
        """Rows with a value."""
        return self.rows - self.missing


def profile_column(name: str, column: pa.ChunkedArray) -> Profile:
    """Type one sampled column: numbers, a flag, times, text, or nothing."""
    rows, missing = len(column), column.null_count
    if missing == rows:
        return Profile(name, "empty", rows, missing)
    kind = column.type
    if pa.types.is_boolean(kind):
        values = column.cast(pa.float64()).to_numpy(zero_copy_only=False)
        return Profile(name, "boolean", rows, missing, numbers=values, bool_text=True)
    if pa.types.is_integer(kind) or pa.types.is_floating(kind):
        values = np.array(column.cast(pa.float64()).to_numpy(zero_copy_only=False))
        infinite = int(np.isinf(values).sum())
        values[np.isinf(values)] = np.nan
        return Profile(name, "number", rows, missing, numbers=values, not_numbers=infinite)
    if pa.types.is_timestamp(kind):
        times = column.to_pandas()
        return Profile(name, "time", rows, missing, times=times)
    return _profile_text(name, column)


def _profile_text(name: str, column: pa.ChunkedArray) -> Profile:
    rows, missing = len(column), column.null_count
    encoded = column.combine_chunks().dictionary_encode()
    dictionary = encoded.dictionary
    indices = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False)
    per_value = np.bincount(indices[indices >= 0], minlength=len(dictionary))
    present = rows - missing

    if len(dictionary) <= 8:  # true/false in any letter case
        lowered = [str(v).strip().lower() for v in dictionary.to_pylist()]
        if set(lowered) <= {"true", "false"}:
            flags = np.array([v == "true" for v in lowered] + [np.nan], dtype=np.float64)
            return Profile(name, "boolean", rows, missing, numbers=flags[indices], bool_text=True)

    parsed = _parsed_numbers(dictionary)
    if parsed is not None:
        numeric = np.isfinite(parsed)
        numeric_rows = int(per_value[numeric].sum())
        if numeric_rows and present - numeric_rows <= MAX_BAD_SHARE * present:
            bad = np.flatnonzero(~numeric)
            return Profile(
                name,
                "number",
                rows,
                missing,
                numbers=np.append(parsed, np.nan)[indices],
                not_numbers=int(per_value[bad].sum()),
                not_number_examples=[str(dictionary[int(i)].as_py()) for i in bad[:3]],
            )

    times = _parsed_times(dictionary)
    if (
        times is not None
        and int(per_value[~np.isnat(times)].sum()) >= (1 - MAX_BAD_SHARE) * present
    ):
        per_row = pd.Series(np.append(times, np.datetime64("NaT"))[indices])
        return Profile(name, "time", rows, missing, times=per_row.dt.tz_localize("UTC"))

    counts = TextCounts.from_arrow(dictionary, per_value, exact=False)
    return Profile(name, "text", rows, missing, counts=counts)


PROBE_VALUES = 1_000
"""Distinct values tried first: a column of ids is not parsed a million times as numbers."""


def _parsed_numbers(dictionary: pa.Array) -> np.ndarray | None:
    """Each distinct text as a float (NaN: not a number, or a code such as ``007``); None when
    most are clearly not numbers."""
    try:
        parsed = dictionary.cast(pa.float64()).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        probe = pd.Series(dictionary.slice(0, PROBE_VALUES).to_pylist(), dtype=object)
        if pd.to_numeric(probe.str.strip(), errors="coerce").notna().mean() < 0.5:
            return None
        text = pd.Series(dictionary.to_pylist(), dtype=object).str.strip()
        parsed = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64)
    coded = pc.match_substring_regex(dictionary, NOT_A_NUMBER_TEXT.pattern)
    parsed = np.where(coded.to_numpy(zero_copy_only=False), np.nan, parsed)
    return np.where(np.isfinite(parsed), parsed, np.nan)


def _parsed_times(dictionary: pa.Array) -> np.ndarray | None:
    """Each distinct text as a naive UTC datetime64 (NaT: not a time); None when the first
    values are not times."""

    def parse(values: list[Any]) -> pd.Series:
        return pd.to_datetime(
            pd.Series(values, dtype=object), utc=True, errors="coerce", format="ISO8601"
        )

    if parse(dictionary.slice(0, PROBE_VALUES).to_pylist()).notna().mean() < 0.9:
        return None
    return parse(dictionary.to_pylist()).dt.tz_convert(None).to_numpy()


# -- the drafted fields ------------------------------------------------------------------------


@dataclass(frozen=True)
class DraftedField:
    """One request field of the draft: its YAML keys in order, and the comments above it."""

    name: str
    kind: str
    spec: dict[str, Any]
    notes: list[str]
    value_notes: dict[str, str] = field(default_factory=dict)
    """Category values' trailing comments (their share of the rows)."""


@dataclass(frozen=True)
class LeftOut:
    """A column the draft does not declare, and why."""

    column: str
    reason: str


@dataclass(frozen=True)
class Draft:
    """The drafted contract, its YAML text, and what was decided per column."""

    contract: FeatureContract
    text: str
    fields: list[DraftedField]
    left_out: list[LeftOut]
    target: str
    timestamp: str
    rows: int
    rows_total: int

    def summary(self) -> str:
        """A few lines for the terminal."""
        kinds: dict[str, int] = {}
        for drafted in self.fields:
            kinds[drafted.kind] = kinds.get(drafted.kind, 0) + 1
        by_kind = ", ".join(f"{count} {kind}" for kind, count in kinds.items())
        rows = f"{self.rows:,} rows" + (
            f" (a uniform sample of {self.rows_total:,})" if self.rows < self.rows_total else ""
        )
        lines = [
            f"drafted {len(self.fields)} request fields ({by_kind}) from {rows}; "
            f"target {self.target}, timestamp {self.timestamp}"
        ]
        lines += [f"  left out {item.column}: {item.reason}" for item in self.left_out]
        return "\n".join(lines)


def draft_contract(
    path: str | Path,
    *,
    target: str | None = None,
    timestamp: str | None = None,
    max_categories: int = DEFAULT_MAX_CATEGORIES,
    max_rows: int = DEFAULT_MAX_ROWS,
    columns: Sequence[str] | None = None,
    exclude: Sequence[str] = (),
    head: bool = False,
) -> Draft:
    """Draft a contract from the order history at ``path``; raise :class:`DraftError` when
    the file cannot be read, has no usable column, has more than ``MAX_FIELDS`` of them, or
    the target or timestamp cannot be decided (``exit_code`` 2: pass the flag)."""
    if not 1 <= max_categories <= MAX_CATEGORY_VALUES:
        raise DraftError(f"--max-categories must be 1..{MAX_CATEGORY_VALUES}", exit_code=2)
    read = None
    if columns is not None:
        read = [*columns, *(c for c in (target, timestamp) if c and c not in columns)]
    sample = read_sample(path, max_rows=max_rows, columns=read, head=head)
    return draft_from_sample(
        sample,
        target=target,
        timestamp=timestamp,
        max_categories=max_categories,
        exclude=exclude,
    )


def draft_from_sample(
    sample: Sample,
    *,
    target: str | None = None,
    timestamp: str | None = None,
    max_categories: int = DEFAULT_MAX_CATEGORIES,
    exclude: Sequence[str] = (),
) -> Draft:
    """:func:`draft_contract` of an already read :class:`Sample`."""
    profiles = {}
    for name, column in sample.columns.items():
        profile = profile_column(name, column)
        profile.totals = sample.totals.get(name)
        profile.scale = sample.rows_total / sample.rows
        profiles[name] = profile
    unknown = [c for c in exclude if c not in profiles and c not in sample.left_out]
    if unknown:
        raise DraftError(f"--exclude: not in the file: {', '.join(unknown)}", exit_code=2)
    target_name, target_how = _choose_target(profiles, target)
    timestamp_name, timestamp_how = _choose_timestamp(profiles, timestamp)
    if target_name == timestamp_name:
        raise DraftError("the target and the timestamp must be two columns", exit_code=2)
    target_values = profiles[target_name].numbers
    assert target_values is not None

    drafted: list[DraftedField] = []
    left_out = [LeftOut(name, reason) for name, reason in sample.left_out.items()]
    for name, profile in profiles.items():
        if name in (target_name, timestamp_name):
            continue
        if name in exclude:
            left_out.append(LeftOut(name, "excluded with --exclude"))
            continue
        decision = _decide(profile, target_values, profiles[timestamp_name], max_categories)
        if isinstance(decision, DraftedField):
            drafted.append(decision)
        else:
            left_out.append(decision)
    drafted, clashing = _without_clashes(drafted)
    left_out += clashing
    order = {name: i for i, name in enumerate([*sample.columns, *sample.left_out])}
    left_out.sort(key=lambda item: order.get(item.column, len(order)))

    direct = [f for f in drafted if f.kind != "entity"]
    if not direct:
        raise DraftError(
            "no column can be a number, integer, boolean or category field; "
            + "; ".join(f"{item.column}: {item.reason}" for item in left_out)
        )
    if len(drafted) > MAX_FIELDS:
        raise DraftError(
            f"{len(drafted)} usable columns, but a contract declares at most {MAX_FIELDS} "
            "request fields (every one is a key of every request): choose them with "
            "--columns a,b,c or drop some with --exclude x,y",
            exit_code=2,
        )
    text = render_yaml(
        sample,
        drafted,
        left_out,
        target=_target_block(profiles[target_name], target_how),
        timestamp=_timestamp_block(profiles[timestamp_name], timestamp_how),
    )
    try:
        contract = parse_contract(text, "<draft>")
    except ContractError as exc:  # a bug in the drafter, not the user's data
        raise AssertionError(f"the drafted contract does not validate: {exc}\n{text}") from exc
    return Draft(
        contract=contract,
        text=text,
        fields=drafted,
        left_out=left_out,
        target=target_name,
        timestamp=timestamp_name,
        rows=sample.rows,
        rows_total=sample.rows_total,
    )


def _choose_target(profiles: dict[str, Profile], given: str | None) -> tuple[str, str]:
    """(the target column, how it was chosen): a positive number column."""

    def positive(p: Profile) -> bool:
        values = p.numbers
        if p.kind != "number" or values is None:
            return False
        finite = values[np.isfinite(values)]
        return bool(finite.size) and bool((finite > 0).all())

    if given is not None:
        if given not in profiles:
            raise DraftError(f"--target {given}: no such column", exit_code=2)
        if not positive(profiles[given]):
            raise DraftError(
                f"--target {given}: not a positive number column (the delivery time in minutes)"
            )
        _check_file_name(given, "--target")
        return given, "given with --target"
    candidates = [n for n, p in profiles.items() if positive(p) and TARGET_NAME.match(n.lower())]
    preferred = [n for n in PREFERRED_TARGETS if n in candidates]
    if len(candidates) == 1 or preferred:
        chosen = preferred[0] if preferred else candidates[0]
        _check_file_name(chosen, "the target")
        return chosen, "detected by its name"
    others = [n for n, p in profiles.items() if positive(p)]
    listed = candidates or others
    raise DraftError(
        "cannot tell which column is the target (the actual delivery time in minutes, a "
        "positive number): pass --target COLUMN; "
        + (
            f"candidates: {', '.join(listed)}"
            if listed
            else "the file has no positive number column"
        ),
        exit_code=2,
    )


def _choose_timestamp(profiles: dict[str, Profile], given: str | None) -> tuple[str, str]:
    """(the order-time column, how it was chosen)."""
    if given is not None:
        if given not in profiles:
            raise DraftError(f"--timestamp {given}: no such column", exit_code=2)
        if profiles[given].kind != "time":
            raise DraftError(
                f"--timestamp {given}: not a column of times (ISO 8601 text or a timestamp)"
            )
        _check_file_name(given, "--timestamp")
        return given, "given with --timestamp"
    candidates = [n for n, p in profiles.items() if p.kind == "time"]
    preferred = [n for n in PREFERRED_TIMESTAMPS if n in candidates]
    if len(candidates) == 1 or preferred:
        chosen = preferred[0] if preferred else candidates[0]
        _check_file_name(chosen, "the timestamp")
        how = "the file's only time column" if len(candidates) == 1 else "detected by its name"
        return chosen, how
    raise DraftError(
        "cannot tell which column is the order time: pass --timestamp COLUMN; "
        + (
            f"candidates: {', '.join(candidates)}"
            if candidates
            else "no column holds times (ISO 8601 text or a timestamp)"
        ),
        exit_code=2,
    )


def _check_file_name(name: str, what: str) -> None:
    if not re.fullmatch(NAME_PATTERN, name):
        raise DraftError(
            f"{what} column {name!r} is not a contract name (lower-case letters, digits and _, "
            "starting with a letter): rename it in the export"
        )


def _decide(
    profile: Profile, target: np.ndarray, timestamp: Profile, max_categories: int
) -> DraftedField | LeftOut:
    """The field a column becomes, or why it is left out."""
    name = profile.name
    if not re.fullmatch(NAME_PATTERN, name):
        suggestion = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
        hint = f" (e.g. {suggestion!r})" if re.fullmatch(NAME_PATTERN, suggestion) else ""
        return LeftOut(
            name,
            "its name is not a contract name (lower-case letters, digits and _, starting with "
            f"a letter); rename the column in the export{hint} to use it",
        )
    if profile.kind == "empty":
        return LeftOut(name, f"empty in all {profile.rows:,} rows")
    if profile.kind == "time":
        return LeftOut(name, _time_reason(profile, timestamp))
    if profile.missing > MOST_EMPTY_SHARE * profile.rows:
        return LeftOut(
            name, f"empty in {profile.missing:,} of {profile.rows:,} rows ({_pct(profile)})"
        )
    if profile.kind == "boolean":
        return _boolean_field(profile)
    if profile.kind == "number":
        assert profile.numbers is not None
        finite = profile.numbers[np.isfinite(profile.numbers)]
        distinct = np.unique(finite)
        low, high = _observed_range(profile)
        integral = bool(np.all(distinct == np.round(distinct)))
        integral = integral and (profile.totals is None or profile.totals.integral)
        if low == high:
            return LeftOut(name, f"one value ({_fmt(low)}) in every row: no signal")
        if integral and low >= 0 and high <= 1:
            return _boolean_field(profile)
        if integral and ID_NAME.search(name):
            distinct_ids, rows = np.unique(finite, return_counts=True)
            ids = TextCounts.of([_fmt(v) for v in distinct_ids], rows, profile.scale == 1.0)
            return _text_field(profile, ids, max_categories, ids_from_numbers=True)
        if integral and len(distinct) == len(finite) and len(finite) >= 100:
            return LeftOut(
                name, f"every value distinct ({len(finite):,} rows): a row id, not a feature"
            )
        both = np.isfinite(profile.numbers) & np.isfinite(target)
        if both.sum() > 2:
            with np.errstate(invalid="ignore", divide="ignore"):
                r = float(np.corrcoef(profile.numbers[both], target[both])[0, 1])
            if abs(r) >= LEAK_CORRELATION:
                return LeftOut(
                    name,
                    f"follows the target almost exactly (correlation {r:.3f}): probably "
                    "known only after delivery",
                )
        return _numeric_field(profile, finite, integral)
    return _text_field(profile, _text_counts(profile), max_categories, ids_from_numbers=False)


def _observed_range(profile: Profile) -> tuple[float, float]:
    """(min, max) of a numeric column over every row read, else over the sample."""
    totals = profile.totals
    if totals is not None and totals.numeric and totals.minimum is not None:
        assert totals.maximum is not None
        return totals.minimum, totals.maximum
    assert profile.numbers is not None
    finite = profile.numbers[np.isfinite(profile.numbers)]
    return float(finite.min()), float(finite.max())


def _text_counts(profile: Profile) -> TextCounts:
    """The whole file's value counts when they were tracked, else the sample's."""
    totals = profile.totals
    if totals is not None and totals.counts is not None:
        values = list(totals.counts)
        return TextCounts.of(values, np.array([totals.counts[v] for v in values]), exact=True)
    assert profile.counts is not None
    if profile.scale == 1.0:
        return dataclasses.replace(profile.counts, exact=True)
    return profile.counts


def _time_reason(profile: Profile, timestamp: Profile) -> str:
    assert profile.times is not None and timestamp.times is not None
    both = profile.times.notna() & timestamp.times.notna()
    later = float((profile.times[both] > timestamp.times[both]).mean()) if both.any() else 0.0
    if later >= 0.99:
        return (
            f"a time, after {timestamp.name} in {later:.0%} of rows: known only after the order "
            "is placed"
        )
    return (
        "a time: a request carries no times; put what matters of it (e.g. the hour) in a "
        "column of its own"
    )


def _boolean_field(profile: Profile) -> DraftedField | LeftOut:
    assert profile.numbers is not None
    values = profile.numbers[np.isfinite(profile.numbers)]
    ones = int((values == 1).sum())
    if ones in (0, len(values)):
        only = ("true" if ones else "false") if profile.bool_text else str(int(bool(ones)))
        return LeftOut(profile.name, f"one value ({only}) in every row: no signal")
    typical = ones * 2 >= len(values)
    written: bool | int = typical if profile.bool_text else int(typical)
    form = "true/false" if profile.bool_text else "0/1"
    spec: dict[str, Any] = {
        "kind": "boolean",
        "description": (
            f"{form} flag, true in {ones / len(values):.1%} of {len(values):,} rows; "
            "the API takes true/false and 0/1"
        ),
        "example": written,
        "monotonic": "none",
    }
    notes = [f"boolean: only {form} values over {len(values):,} rows"]
    return _with_missing(profile, DraftedField(profile.name, "boolean", spec, notes), written)


def _numeric_field(profile: Profile, finite: np.ndarray, integral: bool) -> DraftedField:
    low, high = _observed_range(profile)
    rows = _rows(profile, len(finite))
    minimum, maximum = _widened(low, high, integral)
    median = float(np.median(finite))
    example: float | int
    if integral:
        example = min(max(round(median), int(minimum)), int(maximum))
        kind = "integer"
    else:
        example = min(max(float(f"{median:.4g}"), minimum), maximum)
        kind = "number"
    spec: dict[str, Any] = {
        "kind": kind,
        "description": f"{kind}, observed {_fmt(low)}..{_fmt(high)} over {rows} rows",
        "minimum": minimum,
        "maximum": maximum,
        "example": example,
        "monotonic": "none",
    }
    clipped = " (not below 0: no value is negative)" if low >= 0 and minimum == 0 else ""
    notes = [
        f"{kind}: {'whole numbers' if integral else 'numbers'} {_fmt(low)}..{_fmt(high)}, "
        f"median {_fmt(median)}; bounds widened by {RANGE_MARGIN:.0%} of the range{clipped}"
    ]
    if profile.not_numbers:
        examples = ", ".join(repr(v) for v in profile.not_number_examples) or "infinite values"
        notes.append(
            f"{profile.not_numbers:,} row(s) hold no number ({examples}): training refuses "
            "them; fix them in the export or train with --drop-invalid"
        )
    return _with_missing(profile, DraftedField(profile.name, kind, spec, notes), example)


def _widened(low: float, high: float, integral: bool) -> tuple[Any, Any]:
    """The bounds ``low - margin .. high + margin`` rounded outwards (to whole numbers, or to
    three significant digits of the range), not below 0 when ``low`` is not negative."""
    margin = RANGE_MARGIN * (high - low)
    lower, upper = low - margin, high + margin
    if low >= 0:
        lower = max(lower, 0.0)
    if integral:
        return math.floor(lower), math.ceil(upper)
    exponent = math.floor(math.log10(high - low)) - 2
    step, decimals = 10.0**exponent, max(0, -exponent)
    minimum = round(math.floor(lower / step) * step, decimals)
    maximum = round(math.ceil(upper / step) * step, decimals)
    if low >= 0:
        minimum = max(minimum, 0.0)
    return minimum, maximum


def _text_field(
    profile: Profile, counts: TextCounts, max_categories: int, *, ids_from_numbers: bool
) -> DraftedField | LeftOut:
    """An entity, a category, or left out (free text, ids repeated too rarely)."""
    name = profile.name
    distinct, present = counts.distinct, counts.present
    if distinct == 1:
        return LeftOut(name, f"one value ({counts.top[0][0]!r}) in every row: no signal")
    # A sample sees each id fewer times than the file holds it: scale the median up.
    median_orders = counts.median * (1.0 if counts.exact else profile.scale)
    id_name = bool(ID_NAME.search(name))
    if (id_name or distinct > max_categories) and counts.invalid_id is None:
        if median_orders >= ENTITY_MIN_MEDIAN_ORDERS:
            return _entity_field(profile, counts, median_orders, id_name)
        if distinct == present:
            return LeftOut(
                name, f"every value distinct ({present:,} rows): a row id, not a feature"
            )
        if id_name or ids_from_numbers:
            about = "" if counts.exact else "about "
            return LeftOut(
                name,
                f"{distinct:,} distinct ids over {present:,} rows, {about}a median of "
                f"{_fmt(round(median_orders, 1))} order(s) each: too few for an entity's mean "
                f"delivery time (an entity needs a median of {ENTITY_MIN_MEDIAN_ORDERS})",
            )
    if id_name and counts.invalid_id is not None:
        return LeftOut(
            name,
            f"ids like {counts.invalid_id[:40]!r} are not entity ids (1-{ENTITY_ID_MAX_LENGTH} "
            "characters of A-Z a-z 0-9 _ . : -)",
        )
    kept = [(v, c) for v, c in counts.top[:max_categories] if c >= RARE_SHARE * present]
    covered = sum(c for _, c in kept) / present
    if distinct > max_categories and covered < CROPPED_CATEGORY_COVERAGE:
        return LeftOut(
            name,
            f"text with {distinct:,} distinct values over {present:,} rows; the "
            f"{len(kept)} most frequent cover {covered:.1%} of them: free text, not a category",
        )
    return _category_field(profile, counts, kept)


def _entity_field(
    profile: Profile, counts: TextCounts, median_orders: float, id_name: bool
) -> DraftedField:
    about = "" if counts.exact else "about "
    why = "its name ends in _id" if id_name else "more distinct values than the category cap"
    spec: dict[str, Any] = {
        "kind": "entity",
        "description": (
            f"id, {counts.distinct:,} distinct over {counts.present:,} rows; the model uses its "
            "mean delivery time"
        ),
        "example": counts.top[0][0],
    }
    notes = [
        f"entity: {counts.distinct:,} distinct ids{'' if counts.exact else ' in the sample'}, "
        f"{about}a median of {_fmt(round(median_orders, 1))} orders each ({why}); ids with "
        "fewer than min_orders (default 5) history orders get the overall mean; monotonic: "
        "increasing (the default) -- a slower id's mean only lengthens a delivery"
    ]
    if profile.missing:
        notes.append(
            f"{profile.missing:,} row(s) have no id: training refuses them (an entity is "
            "required); fill them in the export or train with --drop-invalid"
        )
    return DraftedField(profile.name, "entity", spec, notes)


def _category_field(
    profile: Profile, counts: TextCounts, kept: list[tuple[str, int]]
) -> DraftedField:
    present = counts.present
    values = [v for v, _ in kept]
    spec: dict[str, Any] = {
        "kind": "category",
        "description": f"category, {counts.distinct} values over {present:,} rows",
        "values": values,
    }
    notes = [f"category: {counts.distinct} distinct values over {present:,} rows, by frequency"]
    tail_values = counts.distinct - len(kept)
    if tail_values:
        tail_rows = present - sum(c for _, c in kept)
        tail = counts.top[len(kept) :]  # the top runs most frequent first: kept is a prefix
        shown = ", ".join(f"{v!r} ({c:,})" for v, c in tail[:5])
        more = f" and {tail_values - 5:,} more" if tail_values > 5 else ""
        other = next(
            o for o in (OTHER_VALUE_DEFAULT, "other_value", "__other__") if o not in values
        )
        spec["on_unseen"] = "other"
        if other != OTHER_VALUE_DEFAULT:
            spec["other_value"] = other
        spec["description"] += f" ({tail_values} rare ones map to {other!r})"
        notes.append(
            f"{tail_values} rare value(s) in {tail_rows:,} rows ({tail_rows / present:.2%}), "
            f"each under {RARE_SHARE:.1%} of rows or beyond the cap, map to {other!r}: "
            f"{shown}{more}"
        )
        notes.append("on_unseen: other -- a value not listed gets the 'other' category too")
    else:
        notes.append(
            "on_unseen: refuse (the default) -- a value not listed is a 400 naming the allowed "
            "values; set `on_unseen: other` to accept new values"
        )
    spec["example"] = values[0]
    value_notes = {v: f"{c / present:.1%}" for v, c in kept}
    drafted = DraftedField(profile.name, "category", spec, notes, value_notes)
    return _with_missing(profile, drafted, values[0])


def _with_missing(profile: Profile, drafted: DraftedField, typical: Any) -> DraftedField:
    """An optional field with its typical value as the default when some rows are empty."""
    if not profile.missing:
        return drafted
    spec = {**drafted.spec, "required": False, "default": typical}
    note = (
        f"empty in {profile.missing:,} of {profile.rows:,} rows ({_pct(profile)}): optional, "
        f"an empty cell or a request without it takes the default {typical!r}"
    )
    return DraftedField(
        drafted.name, drafted.kind, spec, [*drafted.notes, note], drafted.value_notes
    )


def _without_clashes(drafted: list[DraftedField]) -> tuple[list[DraftedField], list[LeftOut]]:
    """Drop a column named like an entity's aggregate (the model computes that one), or an
    entity whose aggregate name would not be a valid name."""
    aggregates = {}
    left_out = []
    kept = []
    for item in drafted:
        if item.kind == "entity":
            feature = f"{item.name.removesuffix('_id')}_avg_delivery_time"
            if not re.fullmatch(NAME_PATTERN, feature):
                left_out.append(
                    LeftOut(item.name, f"its aggregate's name {feature!r} would be too long")
                )
                continue
            aggregates[feature] = item.name
        kept.append(item)
    final = []
    for item in kept:
        if item.name in aggregates:
            left_out.append(
                LeftOut(
                    item.name,
                    f"the name of {aggregates[item.name]}'s aggregate, which the model computes "
                    "from the history itself",
                )
            )
            continue
        final.append(item)
    return final, left_out


def _target_block(profile: Profile, how: str) -> tuple[dict[str, Any], str]:
    assert profile.numbers is not None
    finite = profile.numbers[np.isfinite(profile.numbers)]
    low, high = _observed_range(profile)
    minimum, maximum = _widened(low, high, integral=False)
    spec = {
        "column": profile.name,
        "minimum": minimum,
        "maximum": maximum,
        "description": (
            f"actual minutes from order to door; observed {_fmt(low)}..{_fmt(high)}, "
            f"median {_fmt(float(np.median(finite)))}"
        ),
    }
    note = (
        f"target {how}: {_fmt(low)}..{_fmt(high)} over {_rows(profile, len(finite))} rows; a "
        "training row outside minimum..maximum is refused"
    )
    if profile.missing or profile.not_numbers:
        note += f"; {profile.missing + profile.not_numbers:,} row(s) without a number are refused"
    return spec, note


def _timestamp_block(profile: Profile, how: str) -> tuple[dict[str, Any], str]:
    assert profile.times is not None
    first, last = profile.times.min(), profile.times.max()
    span = (last - first) / pd.Timedelta(days=1)
    spec = {"column": profile.name}
    note = (
        f"timestamp {how}: {first:%Y-%m-%d %H:%M} .. {last:%Y-%m-%d %H:%M} UTC "
        f"({span:.0f} days); times without an offset are UTC"
    )
    return spec, note


# -- YAML text ---------------------------------------------------------------------------------

_SPEC_COMMENTS = {
    "monotonic": "or increasing / decreasing: the prediction may only rise / fall with it",
    "on_unseen": "refuse (400 listing the values) or other",
}


def render_yaml(
    sample: Sample,
    drafted: list[DraftedField],
    left_out: list[LeftOut],
    *,
    target: tuple[dict[str, Any], str],
    timestamp: tuple[dict[str, Any], str],
) -> str:
    """The contract as YAML text, with comments saying what was inferred from how many rows."""
    source = Path(sample.source).name
    files = f"{sample.files} {sample.format} file{'s' if sample.files > 1 else ''}"
    if sample.sampled:
        rows = (
            f"Every row was read ({sample.rows_total:,}): number ranges and category values "
            "count them all; kinds, medians, examples and entity repeats are inferred from a "
            f"uniform sample of {sample.rows:,} of them (--max-rows)."
        )
    elif sample.head:
        rows = (
            f"Inferred from its first {sample.rows:,} rows only (--head): a value or an extreme "
            "in later rows was not seen, and training refuses such rows; draft without --head "
            "to count every row."
        )
    else:
        rows = f"Inferred from all {sample.rows:,} rows."
    lines = [
        "# Feature contract drafted by `python -m models.contract draft` (make contract) from",
        *_wrapped(f"{sample.source} ({files}). {rows}", "# ", "# "),
        "#",
        "# Review it before training: every field is a request field of the API, a number",
        "# outside its bounds or a category value not listed is refused (400). Reference:",
        "# docs/contract.md. The rules the draft applied:",
        f"# - number / integer bounds: the observed range widened by {RANGE_MARGIN:.0%} of its "
        "width",
        "#   on each side, not below 0 for a column with no negative value;",
        "# - category values by frequency; values in under "
        f"{RARE_SHARE:.1%} of rows (or beyond the cap)",
        "#   map to `other` (on_unseen: other);",
        "# - monotonic is none everywhere: set increasing / decreasing on a field whose effect you",
        "#   know (e.g. a distance) and the model may only learn a prediction that rises / falls",
        "#   with it;",
        "# - cohorts (monitoring slices) are not drafted: add `cohort: {dimension: name, edges:",
        "#   [..]}` to a number, or `cohort: {dimension: name}` to a category or boolean.",
    ]
    if left_out:
        lines += ["#", "# Left out (declare one by hand if it is known when the order is placed):"]
        for skipped in left_out:
            lines += _wrapped(f"{skipped.column}: {skipped.reason}", "#   ", "#     ")
    lines += [
        "",
        "version: 1",
        f"description: {_string(f'Drafted from {source}: {len(drafted)} request fields.')}",
        "",
    ]
    for block_name, (spec, note) in (("target", target), ("timestamp", timestamp)):
        lines += _wrapped(note, "# ", "# ")
        lines.append(f"{block_name}:")
        lines += [f"  {key}: {_scalar(value, key)}" for key, value in spec.items()]
        lines.append("")
    lines.append("fields:")
    for index, item in enumerate(drafted):
        if index:
            lines.append("")
        for note in item.notes:
            lines += _wrapped(note, "  # ", "  #   ")
        lines.append(f"  {_key(item.name)}:")
        for key, value in item.spec.items():
            comment = f"  # {_SPEC_COMMENTS[key]}" if key in _SPEC_COMMENTS else ""
            if key == "values":
                lines.append("    values:")
                for entry in value:
                    share = item.value_notes.get(entry)
                    lines.append(f"      - {_scalar(entry)}" + (f"  # {share}" if share else ""))
            else:
                lines.append(f"    {key}: {_scalar(value, key)}{comment}")
    return "\n".join(lines) + "\n"


def _wrapped(text: str, first: str, rest: str, width: int = 96) -> list[str]:
    """``text`` as comment lines: ``first`` before the first, ``rest`` before the others."""
    lines = textwrap.wrap(text, width=width - len(rest), break_long_words=False) or [""]
    return [(first if i == 0 else rest) + line for i, line in enumerate(lines)]


def _key(name: str) -> str:
    """A field name as a YAML key (quoted when YAML would read it as something else: yes, on,
    null)."""
    return name if yaml.safe_load(name) == name else _string(name)


def _string(text: str) -> str:
    dumped = yaml.safe_dump(
        [text], default_flow_style=True, default_style='"', allow_unicode=True, width=1 << 20
    )
    return dumped.strip()[1:-1]


_PLAIN_KEYS = {"kind", "monotonic", "on_unseen", "column"}
"""Keys whose string values are keywords or column names, written unquoted."""


def _scalar(value: Any, key: str = "") -> str:
    """A YAML scalar: strings in double quotes (a value like ``no`` or ``1.0`` stays text),
    keywords and column names plain."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):  # the shortest text that reads back as the same float
        return np.format_float_positional(value, unique=True, trim="-")
    if key in _PLAIN_KEYS and isinstance(value, str) and yaml.safe_load(value) == value:
        return value
    return _string(str(value))


def _fmt(value: float) -> str:
    """A number as written in the draft: no exponent, no float noise (0.1, not
    0.1000000000000000055)."""
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return np.format_float_positional(value, precision=6, unique=True, fractional=False, trim="-")


def _rows(profile: Profile, sampled: int) -> str:
    """How many rows a whole-file statistic covers ("all 12,000,000"), else the sample's."""
    totals = profile.totals
    if profile.scale > 1.0 and totals is not None and totals.numeric:
        return f"all {round(profile.rows * profile.scale):,}"
    return f"{sampled:,}"


def _pct(profile: Profile) -> str:
    return f"{profile.missing / profile.rows:.1%}"
