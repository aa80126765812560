"""Reading an order history once, streamed: a uniform sample of its rows, and per column what
every row holds.

Files (a CSV, a Parquet file, a directory of Parquet files) -> batches, each column cast to one
of five types (float64 / int64 / bool / timestamp (UTC) / string) -> a bottom-k reservoir that
keeps a uniform sample of at most ``max_rows`` rows, and :class:`ColumnTotals` that count every
row (number ranges, text value counts). Memory is bounded by the sample, not the file.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from models.contract.draft.errors import DraftError
from models.contract.spec import MAX_CATEGORY_VALUES, MAX_FIELDS
from models.order_paths import OrderPathError, resolve_files

DEFAULT_MAX_ROWS = 1_000_000
"""Rows the draft is inferred from: a larger file is sampled uniformly (read once, streamed)."""
MAX_COLUMNS_READ = 4 * MAX_FIELDS
"""A wider file must name the columns to draft (``--columns``): the sample would not fit."""
SAMPLE_SEED = 0
TRACKED_VALUES = 4 * MAX_CATEGORY_VALUES
"""Distinct text values counted over the whole file; a column with more is counted in the
sample only (it is an id or free text, not a category)."""


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
    if max_rows < 1:
        raise DraftError("max_rows must be at least 1", exit_code=2)
    root = Path(path)
    try:
        fmt, files = resolve_files(root)
    except OrderPathError as exc:
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
    with pa_csv.open_csv(file) as reader:
        return list(reader.schema.names)


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
    read = pa_csv.ReadOptions(block_size=1 << 22)
    with pa_csv.open_csv(file, read_options=read, convert_options=convert) as reader:
        yield from reader


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
