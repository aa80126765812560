"""Export the predictions that received feedback as Parquet, in the training schema.

    python -m serving.pipeline.prediction_log.export --out labels.parquet [--since HOURS]
        [--contract CONTRACT.yaml] [--backend sqlite|redis] [--path DB] [--redis-url URL]
        [--redis-prefix PREFIX]

One row per labelled prediction, its columns from the feature contract: the order as it was
predicted -- the timestamp column (when it was predicted), every request field in the
contract's order (entity ids as sent; the other fields decoded from the logged model input,
categories back to their values), the actual delivery time from ``POST /v1/feedback`` as the
target column -- then what was served (prediction id, model version, prediction and interval,
each entity aggregate's served value) and when the label arrived (``labelled_at``).
``train.py --data labels.parquet --contract`` the same contract reads the first columns
(:func:`training_columns`) and ignores the rest.

Which contract: ``--contract FILE``, else the contract of the model the service serves
(``DELIVERY_ETA_MODEL_TAG``, else the production model) from the model store, else the default
contract. Each block is checked against the contract of the model that made it (read from the
model store, once per version): a block whose model has other inputs is skipped and counted
(``skipped_other_contract``), like a block without ids; a block whose model is not in this
machine's store is exported when its rows have the contract's width, and counted
(``rows_model_not_stored``).

The export streams: labels are read in pages (:data:`LABEL_PAGE`), their blocks fetched a
group at a time (:data:`BLOCK_GROUP`) and the rows written as Parquet row groups, so memory does
not grow with the log. Labels whose block is gone (evicted by the size cap) and labels of blocks
written before the entity ids were kept cannot be exported; they are counted, not written.
The defaults are the service's own settings (``DELIVERY_ETA_PREDICTION_LOG_*``); the file is
written beside ``--out`` and renamed onto it when complete. docs/prediction-log.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import redis
from pydantic import ValidationError

from models.contract import (
    CategoryField,
    ContractError,
    FeatureContract,
    contract_from_metadata,
    default_contract,
    load_contract,
)
from models.contract.request import value_problem
from models.features import FeatureAssembler
from serving.pipeline.prediction_log.location import announce, redacted_url
from serving.pipeline.prediction_log.records import decode_entity_ids, split_prediction_id
from serving.pipeline.prediction_log.sqlite_log import has_entity_ids_column
from serving.settings import ServiceSettings

_T = TypeVar("_T")

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


LABEL_PAGE = 10_000
"""Labels read from the log at a time (SQLite), or block keys scanned at a time (Redis)."""
BLOCK_GROUP = 100
"""Blocks fetched at a time: a 1000-row block is ~80 KB, so a group stays under ~10 MB."""
ROW_GROUP_ROWS = 10_000
"""Rows buffered before they are written out as one Parquet row group."""

ModelContracts = Callable[[str], FeatureContract | None]
"""Model version -> the contract it was trained with (None: not in this machine's store)."""


def inputs_signature(contract: FeatureContract) -> tuple[object, ...]:
    """What decides how a logged row decodes: the model inputs, each direct field's kind (and
    a category's levels), the entity fields. Two contracts with equal signatures log rows the
    same way (their bounds or descriptions may differ)."""
    direct = tuple(
        (name, spec.kind, spec.levels() if isinstance(spec, CategoryField) else None)
        for name, spec in contract.fields.items()
        if spec.kind != "entity"
    )
    return (contract.feature_names, contract.entity_fields, direct)


def store_contracts() -> ModelContracts:
    """Model version -> its stored contract, read from the model store once per version."""
    cache: dict[str, FeatureContract | None] = {}

    def lookup(version: str) -> FeatureContract | None:
        if version not in cache:
            cache[version] = _stored_contract(version)
        return cache[version]

    return lookup


def _stored_contract(version: str) -> FeatureContract | None:
    import bentoml  # the model store: only when the export runs

    try:
        stored = bentoml.models.get(version)
    except (bentoml.exceptions.BentoMLException, ValueError):
        return None
    try:
        return contract_from_metadata(stored.info.metadata) or default_contract()
    except ContractError:
        return None


def served_contract(contracts: ModelContracts) -> tuple[FeatureContract, str]:
    """The contract of the model the service serves (its settings, else the production model),
    and where it came from; the default contract when that model is not in the store."""
    from models.settings import ModelSettings
    from models.store.stages import LifecycleError, resolve_serving_tag

    try:
        tag = resolve_serving_tag(ModelSettings().model_tag)
    except (LifecycleError, ValidationError):
        tag = None
    found = None if tag is None else contracts(tag)
    if found is None:
        return default_contract(), "default contract (no served model in the model store)"
    return found, f"contract of the served model {tag}"


class ExportError(Exception):
    """The export cannot run (no log, not a log, unreachable, OUT not writable): one line."""


@dataclass(frozen=True)
class Label:
    """One joined label: the prediction's id, the actual minutes and when it arrived."""

    prediction_id: str
    row: int
    actual: float
    labelled_at: float | None


@dataclass(frozen=True)
class StoredBlock:
    """One request's block as stored (see ``records.PredictionBlock``)."""

    created_at: float
    model_version: str
    rows: int
    features: bytes
    outputs: bytes
    entity_ids: bytes | None


@dataclass(frozen=True)
class LabelledBlock:
    """A block and its labels read so far; ``block`` is None when it no longer exists."""

    block: StoredBlock | None
    labels: list[Label]


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


def batched(items: Iterable[_T], size: int) -> Iterator[list[_T]]:
    """``items`` in lists of ``size`` (the last one shorter); ``itertools.batched`` is 3.12+."""
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


# -- SQLite ---------------------------------------------------------------------------------


def open_sqlite_log(path: Path, timeout_s: float = 5.0) -> sqlite3.Connection:
    """The log's file, only read from (never created, never migrated); :class:`ExportError` if
    it does not exist or is not a prediction log.

    Opened read-write all the same, as the service opens it: a read-only connection to a WAL
    file nobody has open creates its ``-wal`` and ``-shm`` files and cannot remove them, and
    made by another user (root) they would keep the service from opening its own log.
    """
    if not path.is_file():
        raise ExportError(f"prediction log {path} does not exist")
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=rw", uri=True, timeout=timeout_s)
        tables = {
            name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
    except sqlite3.Error as exc:
        raise ExportError(
            f"cannot open prediction log {path}: {type(exc).__name__}: {exc}"
        ) from exc
    if "prediction_blocks" not in tables and "predictions" not in tables:
        db.close()
        raise ExportError(f"{path} is not a prediction log (no prediction_blocks table)")
    return db


def sqlite_labelled_blocks(
    db: sqlite3.Connection,
    since: float | None = None,
    *,
    page: int = LABEL_PAGE,
    group: int = BLOCK_GROUP,
    legacy: ExportSummary | None = None,
) -> Iterator[list[LabelledBlock]]:
    """The labels of the ``feedback`` table (given at or after ``since``) with their blocks,
    ``page`` labels at a time in prediction-id order, ``group`` blocks per list yielded.

    Labels of the one-row-per-prediction table of old files have no ids: counted into
    ``legacy`` (labels seen, skipped without ids) when it is given.
    """
    tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    cutoff = -math.inf if since is None else since
    if legacy is not None and "predictions" in tables:
        (old,) = db.execute(
            "SELECT count(*) FROM predictions WHERE actual IS NOT NULL AND feedback_at >= ?",
            (cutoff,),
        ).fetchone()
        legacy.labels_seen += old
        legacy.skipped_no_ids += old
    if "feedback" not in tables or "prediction_blocks" not in tables:
        return
    ids_column = "entity_ids" if has_entity_ids_column(db) else "NULL"
    after = ""
    while True:
        # Keyset pagination on the primary key: no page is read twice, however long it takes.
        labels = db.execute(
            "SELECT prediction_id, actual, feedback_at FROM feedback"
            " WHERE prediction_id > ? AND feedback_at >= ? ORDER BY prediction_id LIMIT ?",
            (after, cutoff, page),
        ).fetchall()
        if not labels:
            return
        after = labels[-1][0]
        by_block: dict[str, list[Label]] = {}
        for prediction_id, actual, feedback_at in labels:
            located = split_prediction_id(prediction_id)
            key, row = located if located is not None else ("", -1)
            by_block.setdefault(key, []).append(Label(prediction_id, row, actual, feedback_at))
        for keys in batched(by_block, group):
            found = {
                key: StoredBlock(*stored)
                for key, *stored in db.execute(
                    "SELECT block_key, created_at, model_version, rows, features, outputs,"
                    f" {ids_column} FROM prediction_blocks"
                    f" WHERE block_key IN ({', '.join('?' * len(keys))})",
                    keys,
                )
            }
            yield [LabelledBlock(found.get(key), by_block[key]) for key in keys]


# -- Redis ----------------------------------------------------------------------------------


def glob_escape(text: str) -> str:
    """``text`` as a literal in a Redis MATCH pattern (its glob characters escaped)."""
    return "".join("\\" + c if c in "\\*?[]" else c for c in text)


def redis_labelled_blocks(
    client: redis.Redis,
    prefix: str,
    since: float | None = None,
    *,
    page: int = LABEL_PAGE,
    group: int = BLOCK_GROUP,
) -> Iterator[list[LabelledBlock]]:
    """The labelled blocks under ``prefix``: the keys are scanned ``page`` at a time, their
    field names tell blocks with labels (fields ``actual:<row>``), and those are read
    ``group`` at a time.

    A label lives in its block's hash, so an expired block takes its labels with it: Redis
    never reports a label whose block is missing. Labels from before ``labelled_at:<row>``
    was recorded count as given at their prediction's time for ``since``.
    """
    seen: set[bytes] = set()  # SCAN may return a key twice; only labelled keys are kept
    cutoff = -math.inf if since is None else since
    keys_scanned = client.scan_iter(match=glob_escape(prefix) + "*", count=page)
    for keys in batched(keys_scanned, page):
        # Field names only (~70 B a block): which hashes hold labels, in one round trip.
        with client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hkeys(key)
            fields = pipe.execute(raise_on_error=False)  # a key of another type: an error
        labelled = []
        for key, names in zip(keys, fields, strict=True):
            if (
                isinstance(names, list)
                and key not in seen
                and any(name.startswith(b"actual:") for name in names)
            ):
                seen.add(key)  # now, not after reading: SCAN may repeat a key within a page
                labelled.append(key)
        for keys_group in batched(labelled, group):
            with client.pipeline(transaction=False) as pipe:
                for key in keys_group:
                    pipe.hgetall(key)
                hashes = pipe.execute(raise_on_error=False)
            blocks = []
            for key, stored in zip(keys_group, hashes, strict=True):
                # Empty: expired since the scan, and its labels with it.
                if isinstance(stored, dict) and stored:
                    block_key = key[len(prefix) :].decode(errors="replace")
                    found = _redis_block(block_key, stored, cutoff)
                    if found is not None:
                        blocks.append(found)
            yield blocks


def _redis_block(block_key: str, stored: dict[bytes, bytes], cutoff: float) -> LabelledBlock | None:
    """A block hash and its labels at or after ``cutoff``; None if it is not a block."""
    try:
        block = StoredBlock(
            float(stored[b"created_at"]),
            stored[b"model_version"].decode(),
            int(stored[b"rows"]),
            stored[b"features"],
            stored[b"outputs"],
            stored.get(b"entity_ids"),
        )
    except (KeyError, ValueError):
        return None
    labels = []
    for name, value in stored.items():
        if not name.startswith(b"actual:"):
            continue
        row_field = name[len(b"actual:") :]
        at = stored.get(b"labelled_at:" + row_field)
        try:
            row, actual = int(row_field), float(value)
            labelled_at = None if at is None else float(at)
        except ValueError:
            continue  # not a label the log wrote
        if (block.created_at if labelled_at is None else labelled_at) < cutoff:
            continue
        labels.append(Label(f"{block_key}{row:05x}", row, actual, labelled_at))
    if not labels:
        return None
    labels.sort(key=lambda label: label.row)
    return LabelledBlock(block, labels)


# -- the command line -----------------------------------------------------------------------


def export_labels(
    out: Path,
    *,
    backend: str,
    path: Path | None = None,
    redis_url: str | None = None,
    redis_prefix: str = "delivery_eta:block:",
    since_hours: float | None = None,
    contract: FeatureContract | None = None,
    model_contracts: ModelContracts | None = None,
) -> ExportSummary:
    """Export the labelled predictions of one log to ``out``; :class:`ExportError` if it
    cannot run.

    ``contract`` gives the columns (default: the served model's, :func:`served_contract`);
    ``model_contracts`` each block's model's contract (default: the model store's,
    :func:`store_contracts`).
    """
    since = None if since_hours is None else time.time() - since_hours * 3600
    lookup = model_contracts or store_contracts()
    if contract is None:
        contract, which = served_contract(lookup)
    else:
        which = "given contract"
    summary = ExportSummary(out=str(out), backend=backend, since_hours=since_hours, contract=which)
    if backend == "sqlite":
        assert path is not None
        db = open_sqlite_log(path)
        try:
            blocks = sqlite_labelled_blocks(db, since, legacy=summary)
            return write_export(blocks, out, summary, contract, lookup)
        except sqlite3.Error as exc:
            raise ExportError(
                f"reading prediction log {path} failed: {type(exc).__name__}: {exc}"
            ) from exc
        finally:
            db.close()
    assert redis_url is not None
    client = redis.Redis.from_url(redis_url, socket_timeout=10, socket_connect_timeout=5)
    try:
        client.ping()
        blocks = redis_labelled_blocks(client, redis_prefix, since)
        return write_export(blocks, out, summary, contract, lookup)
    except redis.RedisError as exc:
        raise ExportError(
            f"prediction log redis {redacted_url(redis_url)} failed: {type(exc).__name__}: {exc}"
        ) from exc
    finally:
        client.close()


def service_log_settings(
    *,
    backend: str | None = None,
    path: Path | None = None,
    redis_url: str | None = None,
    redis_prefix: str | None = None,
) -> ServiceSettings:
    """The service's settings (``DELIVERY_ETA_*``) with the given log options, where not None,
    in place of its own: which log a command-line reader reads. :class:`ExportError` (one line
    naming each problem) if they are invalid."""
    overrides: dict[str, Any] = {
        "prediction_log_backend": backend,
        "prediction_log_path": path,
        "prediction_log_redis_url": redis_url,
        "prediction_log_redis_prefix": redis_prefix,
    }
    try:
        return ServiceSettings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in exc.errors()
        )
        raise ExportError(f"invalid settings: {problems}") from exc


def main(argv: Sequence[str] | None = None) -> int:
    """Run the export; prints one JSON summary line. Exit 2, one line on stderr, if it cannot."""
    parser = argparse.ArgumentParser(
        prog="python -m serving.pipeline.prediction_log.export",
        description="Export the predictions that received feedback as Parquet (training schema).",
    )
    parser.add_argument("--out", type=Path, required=True, help="Parquet file to write")
    parser.add_argument(
        "--backend", choices=["sqlite", "redis"], help="default: the service's setting"
    )
    parser.add_argument("--path", type=Path, help="SQLite log file; default: the service's")
    parser.add_argument("--redis-url", help="Redis of the log; default: the service's")
    parser.add_argument("--redis-prefix", help="key prefix of the Redis log's blocks")
    parser.add_argument(
        "--since", type=float, metavar="HOURS", help="only labels given in the last HOURS"
    )
    parser.add_argument(
        "--contract",
        type=Path,
        help="feature contract (YAML) giving the columns; default: the served model's",
    )
    args = parser.parse_args(argv)
    try:
        if args.since is not None and not args.since > 0:
            raise ExportError("--since must be a positive number of hours")
        contract = None
        if args.contract is not None:
            try:
                contract = load_contract(args.contract)
            except ContractError as exc:
                raise ExportError(" ".join(str(exc).split())) from exc
        settings = service_log_settings(
            backend=args.backend,
            path=args.path,
            redis_url=args.redis_url,
            redis_prefix=args.redis_prefix,
        )
        announce(settings, "export-labels")
        redis_url = settings.prediction_log_redis_url or settings.redis_url
        summary = export_labels(
            args.out,
            backend=settings.prediction_log_backend,
            path=settings.prediction_log_path,
            redis_url=None if redis_url is None else str(redis_url),
            redis_prefix=settings.prediction_log_redis_prefix,
            since_hours=args.since,
            contract=contract,
        )
    except ExportError as exc:
        print(f"export-labels: {exc}", file=sys.stderr, flush=True)
        return 2
    print(json.dumps(asdict(summary)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
