"""Reading an order history's files with pyarrow (which files: ``models.order_paths``): their
fingerprint, which columns they hold against the contract's schema, and the table of those
columns only, one type per column whatever each file wrote.
"""

from __future__ import annotations

import difflib
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from models.contract import CategoryField, EntityField, FeatureContract
from models.training.order_report import SAMPLE_ROWS, OrderHistoryError

ORDER_ID_COLUMNS = ("order_id", "prediction_id")
"""Columns read as the order's id, the first a file has: ``order_id`` (a warehouse export's
row id; ``make contract`` leaves it out of the features) or ``prediction_id`` (a label export:
one row per labelled prediction). The contract has no notion of a row id, so the name decides.
The id is never a feature: it makes duplicated orders visible and orders the orders that share
a timestamp (``dataset.ORDER_KEY``)."""


@dataclass(frozen=True)
class DataSource:
    """Where the orders came from: path, format, files and their combined sha256."""

    path: str
    format: str
    files: list[str]
    sha256: str


def fingerprint_files(files: list[Path], root: Path) -> str:
    """sha256 over each file's path relative to ``root`` and its bytes, in sorted order."""
    digest = hashlib.sha256()
    for file in files:
        digest.update(str(file.relative_to(root) if file != root else file.name).encode())
        with file.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def file_columns(
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


def missing_columns(
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


def read_table(
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
