"""The label file: labelled predictions as Parquet rows in the training schema.

The columns come from the feature contract: the order as it was predicted -- the timestamp
column (when it was predicted), every request field in the contract's order (entity ids as
sent; the other fields decoded from the logged model input, categories back to their values),
the actual delivery time as the target column -- then what was served (prediction id, model
version, prediction and interval, each entity aggregate's served value) and when the label
arrived (``labelled_at``). ``train.py --data`` reads the first columns
(:func:`training_columns`) and ignores the rest. Rows are written in row groups of
:data:`ROW_GROUP_ROWS` to a temporary file renamed onto the target when complete.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from models.contract import CategoryField, FeatureContract, default_contract
from models.contract.request import value_problem
from models.features import FeatureAssembler
from operations.model_contracts import ModelContracts, inputs_signature
from prediction_log.reading import Label, LabelledBlock, StoredBlock
from prediction_log.records import decode_entity_ids

_UTC_US = pa.timestamp("us", tz="UTC")
SERVED_COLUMNS = (
    "prediction_id",
    "model_version",
    "predicted_delivery_time_min",
    "confidence_interval_lower",
    "confidence_interval_upper",
)
"""What was served, after the training columns (then each entity aggregate, then
``labelled_at``): extras the trainer ignores."""


def training_columns(contract: FeatureContract) -> tuple[str, ...]:
    """The training file's columns of ``contract``, in order: its timestamp column, every
    request field as declared, its target column (what ``train.py --data`` reads)."""
    return (contract.timestamp.column, *contract.fields, contract.target.column)


def _field_type(spec: Any) -> pa.DataType:
    if spec.kind in ("entity",):
        return pa.string()
    if spec.kind == "number":
        return pa.float64()
    if spec.kind == "integer":
        return pa.int64()
    if spec.kind == "boolean":
        return pa.bool_()
    assert isinstance(spec, CategoryField)
    levels = spec.levels()
    if all(isinstance(v, int) and not isinstance(v, bool) for v in levels):
        return pa.int64()
    return pa.string()


def export_schema(contract: FeatureContract) -> pa.Schema:
    """The exported file's schema: :func:`training_columns`, then the extras."""
    fields = [pa.field(contract.timestamp.column, _UTC_US, nullable=False)]
    fields += [
        pa.field(name, _field_type(spec), nullable=False) for name, spec in contract.fields.items()
    ]
    fields.append(pa.field(contract.target.column, pa.float64(), nullable=False))
    fields += [pa.field(name, pa.string(), nullable=False) for name in SERVED_COLUMNS[:2]]
    fields += [pa.field(name, pa.float64(), nullable=False) for name in SERVED_COLUMNS[2:]]
    fields += [pa.field(name, pa.float64(), nullable=False) for name in contract.entity_features]
    # Null only for Redis labels joined by a version that did not record the time.
    fields.append(pa.field("labelled_at", _UTC_US, nullable=True))
    return pa.schema(fields)


ROW_GROUP_ROWS = 10_000
"""Rows buffered before they are written out as one Parquet row group."""


class ExportError(Exception):
    """The export cannot run (no log, not a log, unreachable, OUT not writable): one line."""


@dataclass
class ExportSummary:
    """What one export did (the CLI prints it as one JSON line)."""

    out: str
    backend: str
    rows_written: int = 0
    labels_seen: int = 0
    skipped_no_ids: int = 0
    """Labels of predictions logged before the entity ids were kept."""
    skipped_block_missing: int = 0
    """Labels whose prediction is no longer in the log (evicted, expired)."""
    skipped_other_contract: int = 0
    """Labels of blocks whose model has other inputs than the export's contract (or whose
    values the contract refuses): they cannot be rows of this file."""
    rows_model_not_stored: int = 0
    """Rows written from blocks whose model is not in this machine's model store: taken to
    have the export contract's inputs, as their width matches."""
    contract: str = ""
    """Which contract gave the columns."""
    since_hours: float | None = None
    message: str = field(default="")


class _ParquetRows:
    """Rows buffered column by column and written as row groups to a temporary file beside
    ``out``, which :meth:`commit` renames onto ``out`` (a failed export leaves nothing)."""

    def __init__(self, out: Path, contract: FeatureContract) -> None:
        if out.is_dir():
            raise ExportError(f"--out {out} is a directory")
        try:
            handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 -- renamed by commit()
                dir=out.parent, prefix=f".{out.name}.", suffix=".tmp", delete=False
            )
        except OSError as exc:
            raise ExportError(
                f"cannot write --out {out} (its directory): {type(exc).__name__}: {exc}"
            ) from exc
        self._out = out
        self._tmp = Path(handle.name)
        handle.close()
        self.contract = contract
        self.schema = export_schema(contract)
        self._assembler = FeatureAssembler(contract)
        # Where each entity aggregate sits in a logged row (the contract's feature order).
        self._aggregate_column = {
            name: contract.feature_names.index(name) for name in contract.entity_features
        }
        self._string_categories = {
            name
            for name, spec in contract.fields.items()
            if isinstance(spec, CategoryField) and self.schema.field(name).type == pa.string()
        }
        self._writer = pq.ParquetWriter(self._tmp, self.schema)
        self._columns: dict[str, list[Any]] = {name: [] for name in self.schema.names}
        self.written = 0

    def rows(
        self, block: StoredBlock, labels: Sequence[Label], ids: list[list[str]]
    ) -> list[tuple[Label, dict[str, Any]]]:
        """Each label's request field values (decoded from the logged model input, ids from
        ``ids``)."""
        features = np.frombuffer(block.features, dtype="<f8").reshape(block.rows, -1)
        picked = features[[label.row for label in labels]]
        values = self._assembler.request_values(picked)
        entity_ids = dict(zip(self.contract.entity_fields, ids, strict=True))
        out = []
        for i, label in enumerate(labels):
            row = {}
            for name in self.contract.fields:
                if name in entity_ids:
                    row[name] = entity_ids[name][label.row]
                else:
                    row[name] = values[name][i]
            out.append((label, row))
        return out

    def add(self, block: StoredBlock, rows: Sequence[tuple[Label, dict[str, Any]]]) -> None:
        """Append ``rows`` (from :meth:`rows`) of ``block``."""
        features = np.frombuffer(block.features, dtype="<f8").reshape(block.rows, -1)
        outputs = np.frombuffer(block.outputs, dtype="<f8").reshape(block.rows, 3)
        contract, columns = self.contract, self._columns
        for label, values in rows:
            logged = features[label.row].tolist()
            point, lower, upper = outputs[label.row].tolist()
            columns[contract.timestamp.column].append(block.created_at)
            for name, value in values.items():
                columns[name].append(str(value) if name in self._string_categories else value)
            columns[contract.target.column].append(label.actual)
            columns["prediction_id"].append(label.prediction_id)
            columns["model_version"].append(block.model_version)
            columns["predicted_delivery_time_min"].append(point)
            columns["confidence_interval_lower"].append(lower)
            columns["confidence_interval_upper"].append(upper)
            for name, column in self._aggregate_column.items():
                columns[name].append(logged[column])
            columns["labelled_at"].append(label.labelled_at)
        if len(columns["prediction_id"]) >= ROW_GROUP_ROWS:
            self._write_buffered()

    def _write_buffered(self) -> None:
        rows = len(self._columns["prediction_id"])
        if not rows:
            return
        arrays = []
        for column in self.schema:
            values = self._columns[column.name]
            if column.type == _UTC_US:
                micros = [None if v is None else round(v * 1e6) for v in values]
                arrays.append(pa.array(micros, type=pa.int64()).cast(_UTC_US))
            else:
                arrays.append(pa.array(values, type=column.type))
        self._writer.write_table(pa.Table.from_arrays(arrays, schema=self.schema))
        self.written += rows
        self._columns = {name: [] for name in self.schema.names}

    def commit(self) -> None:
        """Write what is buffered, close the file and move it onto ``out``."""
        self._write_buffered()
        self._writer.close()
        os.replace(self._tmp, self._out)

    def abort(self) -> None:
        """Drop the temporary file."""
        try:
            self._writer.close()
        finally:
            self._tmp.unlink(missing_ok=True)


def _valid_rows(
    contract: FeatureContract, rows: list[tuple[Label, dict[str, Any]]]
) -> list[tuple[Label, dict[str, Any]]]:
    """The rows whose values ``contract`` accepts (a block of a model with a wider range may
    hold values the export's contract refuses; the trainer would refuse the file)."""
    return [
        (label, values)
        for label, values in rows
        if not any(value_problem(contract.fields[name], value) for name, value in values.items())
    ]


def write_export(
    pages: Iterable[Sequence[LabelledBlock]],
    out: Path,
    summary: ExportSummary,
    contract: FeatureContract | None = None,
    model_contracts: ModelContracts | None = None,
) -> ExportSummary:
    """Write the labelled rows of ``pages`` to ``out`` as Parquet, in ``contract``'s columns
    (default: the default contract); counts into ``summary``.

    ``model_contracts`` gives each block's model's contract (default: none known, every block
    is taken as written by ``contract``'s model when its width matches). Streams: each page is
    turned into rows and written (in row groups of :data:`ROW_GROUP_ROWS`) before the next one
    is read.
    """
    contract = contract or default_contract()
    lookup = model_contracts or (lambda version: None)
    signature, width = inputs_signature(contract), len(contract.feature_names)
    parquet = _ParquetRows(out, contract)
    try:
        for page in pages:
            for labelled in page:
                summary.labels_seen += len(labelled.labels)
                block = labelled.block
                if block is None:
                    summary.skipped_block_missing += len(labelled.labels)
                    continue
                in_block = [label for label in labelled.labels if label.row < block.rows]
                # A row past the block's end has no prediction (feedback never joins one).
                summary.skipped_block_missing += len(labelled.labels) - len(in_block)
                if not in_block:
                    continue
                fields = len(contract.entity_fields)
                ids: list[list[str]] | None = []  # a contract without entities needs none
                if fields:
                    stored = block.entity_ids
                    ids = None if stored is None else decode_entity_ids(stored, block.rows, fields)
                if ids is None:
                    summary.skipped_no_ids += len(in_block)
                    continue
                model = lookup(block.model_version)
                if (model is not None and inputs_signature(model) != signature) or len(
                    block.features
                ) != 8 * width * block.rows:
                    summary.skipped_other_contract += len(in_block)
                    continue
                rows = parquet.rows(block, in_block, ids)
                if model != contract:
                    kept = _valid_rows(contract, rows)
                    summary.skipped_other_contract += len(rows) - len(kept)
                    rows = kept
                if model is None:
                    summary.rows_model_not_stored += len(rows)
                parquet.add(block, rows)
        parquet.commit()
    except BaseException:
        parquet.abort()
        raise
    summary.rows_written = parquet.written
    if summary.rows_written:
        summary.message = f"wrote {summary.rows_written} labelled predictions"
    else:
        summary.message = "no labelled predictions to export: wrote an empty file with the schema"
    if summary.skipped_other_contract:
        # Easy to miss in a JSON line: the export's contract is not the one that made them.
        summary.message += (
            f"; {summary.skipped_other_contract} label(s) skipped: their model's inputs are not "
            "this export's contract (pass --contract, or DELIVERY_ETA_MODEL_TAG of the service)"
        )
    return summary
