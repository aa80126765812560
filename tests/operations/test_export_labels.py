"""The label export: predictions that received feedback -> Parquet in the training schema of the
contract, from the SQLite and the Redis log; blocks without ids, blocks gone and blocks of a model
with other inputs are counted, not written; files from before the ids open, migrate and export;
the log is read in pages; the command line."""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import redis

from models.contract import FeatureContract, default_contract, parse_contract
from models.contract.bodies import OrderGenerator
from models.features import FeatureAssembler, OnlineValues
from operations.export_labels import ExportError, export_labels, main
from operations.label_file import (
    SERVED_COLUMNS,
    ExportSummary,
    export_schema,
    training_columns,
    write_export,
)
from prediction_log import (
    PredictionBlock,
    RedisPredictionLog,
    SQLitePredictionLog,
    decode_entity_ids,
    encode_entity_ids,
    new_prediction_ids,
    unusable_reason,
)
from prediction_log.location import LogLocation
from prediction_log.reading import LABEL_PAGE, Label, LabelledBlock, StoredBlock
from prediction_log.redis_reader import RedisLogReader
from prediction_log.sqlite_reader import SQLiteLogReader
from prediction_log.sqlite_schema import OutdatedLogFile
from tests.harness.local_server import ROOT
from tests.models.contract.mixed_contract import MIXED

DEFAULT = default_contract()
MODEL = "delivery_eta:v1"
# The block schema of the code before entity ids were kept, verbatim.
OLD_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS prediction_blocks (
        block_key TEXT PRIMARY KEY, created_at REAL NOT NULL, model_version TEXT NOT NULL,
        rows INTEGER NOT NULL, features BLOB NOT NULL, outputs BLOB NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS prediction_blocks_created ON prediction_blocks(created_at)",
    """CREATE TABLE IF NOT EXISTS feedback (
        prediction_id TEXT PRIMARY KEY, actual REAL NOT NULL, feedback_at REAL NOT NULL)""",
]


@dataclass(eq=False)  # hashable by identity: tests key their labels by (request, row)
class Logged:
    """One request as the service logs it, and what the export must give back for its rows."""

    contract: FeatureContract
    block: PredictionBlock
    ids: list[str]
    orders: list[dict[str, Any]]

    def entity_ids(self, field: str) -> list[str]:
        return [order[field] for order in self.orders]

    def expected(self, row: int, actual: float) -> dict[str, object]:
        """The exported row of ``row`` labelled ``actual``: the request as sent (a boolean
        as true/false, an unseen category as its ``other`` value, an optional field left
        out as its default), then what was served."""
        contract, order = self.contract, self.orders[row]
        features, outputs = self.block.features[row], self.block.outputs[row]
        values: dict[str, object] = {
            contract.timestamp.column: pd.Timestamp(self.block.created_at, unit="s", tz="UTC")
        }
        for name, spec in contract.fields.items():
            value = order.get(name, getattr(spec, "default", None))
            if spec.kind == "boolean":
                value = bool(value)
            elif spec.kind == "category" and value not in spec.values:  # type: ignore[union-attr]
                value = spec.other_value  # type: ignore[union-attr]
            if spec.kind == "category" and export_schema(contract).field(name).type == "string":
                value = str(value)
            values[name] = value
        values[contract.target.column] = actual
        served = dict(zip(SERVED_COLUMNS, [self.ids[row], self.block.model_version], strict=False))
        served |= dict(zip(SERVED_COLUMNS[2:], outputs, strict=True))
        aggregates = {
            name: features[contract.feature_names.index(name)] for name in contract.entity_features
        }
        return values | served | aggregates


def _logged(
    rows: int,
    seed: int,
    *,
    with_ids: bool = True,
    created_at: float | None = None,
    contract: FeatureContract = DEFAULT,
    model: str = MODEL,
) -> Logged:
    """Request ``seed`` of ``rows`` random valid orders, assembled into the model input as the
    service does (each entity aggregate sent as an override, so every row's differs); ids use
    every allowed character (letters, digits, ``_ . : -``)."""
    key, ids = new_prediction_ids(rows)
    rng = random.Random(seed)
    generator = OrderGenerator(contract, override_share=1.0)
    orders = generator.orders(rng, rows)
    for i, order in enumerate(orders):
        for n, field in enumerate(contract.entity_fields):
            order[field] = f"{'rD'[n % 2]}-{seed}.{i}:{n}_x"
    fields = [*contract.fields, *contract.entity_features]
    defaults = {n: getattr(s, "default", None) for n, s in contract.fields.items()}
    namespaces = [
        SimpleNamespace(**{f: order.get(f, defaults.get(f)) for f in fields}) for order in orders
    ]
    features, _ = FeatureAssembler(contract).assemble(
        namespaces,
        OnlineValues.missing(contract.entity_features, rows, failed=False),
        dict.fromkeys(contract.entity_features, 30.0),
    )
    outputs = np.random.default_rng(seed).uniform(5, 90, (rows, 3))
    columns = [[order[field] for order in orders] for field in contract.entity_fields]
    entity_ids = encode_entity_ids(columns) if with_ids else None
    block = PredictionBlock(
        key, created_at or time.time(), model, features, outputs, entity_ids=entity_ids
    )
    return Logged(contract, block, ids, orders)


def _read(out: Path, contract: FeatureContract = DEFAULT) -> pd.DataFrame:
    """The exported file, checked for the contract's training columns and their types."""
    frame = pd.read_parquet(out)
    extras = [*SERVED_COLUMNS, *contract.entity_features, "labelled_at"]
    assert list(frame.columns) == [*training_columns(contract), *extras]
    for name in (contract.timestamp.column, "labelled_at"):
        assert isinstance(frame[name].dtype, pd.DatetimeTZDtype), frame[name].dtype
        assert str(frame[name].dtype.tz) == "UTC"
        assert frame[name].dtype.unit in ("ns", "us")
    for name in (*contract.entity_fields, "prediction_id", "model_version"):
        assert pd.api.types.is_string_dtype(frame[name]), (name, frame[name].dtype)
    floats = [*SERVED_COLUMNS[2:], *contract.entity_features, contract.target.column]
    floats += contract.fields_of_kind("number")
    for name in floats:
        assert frame[name].dtype == np.float64, (name, frame[name].dtype)
    for name in contract.fields_of_kind("integer"):
        spec = contract.fields[name]
        assert frame[name].dtype == np.int64
        assert frame[name].between(spec.minimum, spec.maximum).all()  # type: ignore[union-attr]
    for name in contract.fields_of_kind("boolean"):
        assert frame[name].dtype == np.bool_
    return frame


def _check_rows(
    frame: pd.DataFrame,
    expected: dict[str, dict[str, object]],
    labelled: tuple[float, float],
    contract: FeatureContract = DEFAULT,
) -> None:
    """Exactly the ``expected`` rows (by prediction id), with the logged values."""
    assert sorted(frame["prediction_id"]) == sorted(expected)
    for row in frame.to_dict("records"):
        want = expected[row["prediction_id"]]
        for name, value in want.items():
            if name == contract.timestamp.column:  # float seconds, exported in microseconds
                assert abs(row[name] - value) < pd.Timedelta(microseconds=2), (name, row, value)
            else:  # the logged float64 values, exactly
                assert row[name] == value, (name, row[name], value)
        assert labelled[0] - 1e-3 <= row["labelled_at"].timestamp() <= labelled[1] + 1e-3


def _summary(summary: ExportSummary) -> tuple[int, int, int, int]:
    return (
        summary.rows_written,
        summary.labels_seen,
        summary.skipped_no_ids,
        summary.skipped_block_missing,
    )


def test_entity_ids_round_trip_and_a_wrong_count_is_refused() -> None:
    first, second = ["r_1", "r.2", "R:3"], ["d-1", "d_2", "D.3"]
    stored = encode_entity_ids([first, second])
    assert stored == b"r_1\nr.2\nR:3\nd-1\nd_2\nD.3"
    assert decode_entity_ids(stored, 3, 2) == [first, second]
    assert decode_entity_ids(stored, 2, 2) is None
    assert decode_entity_ids(stored, 3, 3) is None
    assert decode_entity_ids(encode_entity_ids([["r"], ["d"]]), 1, 2) == [["r"], ["d"]]


def test_the_training_columns_are_the_contracts() -> None:
    # The default contract's file, as train.py --data has always read it.
    assert training_columns(DEFAULT) == (
        DEFAULT.timestamp.column,
        *DEFAULT.fields,
        DEFAULT.target.column,
    )
    assert training_columns(MIXED) == (
        "ordered_at",
        "store_id",
        "weather",
        "vehicle",
        "city_tier",
        "items",
        "festival",
        "rating",
        "courier_id",
        "minutes",
    )
    types = {f.name: str(f.type) for f in export_schema(MIXED)}
    assert (types["weather"], types["vehicle"], types["city_tier"]) == ("string", "string", "int64")
    assert (types["items"], types["festival"], types["rating"]) == ("int64", "bool", "double")
    assert [n for n in types if n.endswith("_avg_delivery_time")] == [
        "store_avg_delivery_time",
        "courier_avg_delivery_time",
    ]


def _pages(*logged: tuple[Logged, dict[int, float]]) -> list[list[LabelledBlock]]:
    """One page of labelled blocks, as the log readers yield them."""
    return [
        [
            LabelledBlock(
                StoredBlock(
                    item.block.created_at,
                    item.block.model_version,
                    len(item.block),
                    *item.block.encoded(),
                    item.block.entity_ids,
                ),
                [
                    Label(item.ids[row], row, actual, item.block.created_at + 1)
                    for row, actual in labels.items()
                ],
            )
            for item, labels in logged
        ]
    ]


def test_every_kind_of_field_is_exported_as_it_was_sent(tmp_path: Path) -> None:
    out = tmp_path / "labels.parquet"
    logged = _logged(400, 1, contract=MIXED, model="delivery_eta:mixed")
    labels = {row: 20.0 + row / 10 for row in range(0, 400, 3)}

    summary = write_export(
        _pages((logged, labels)),
        out,
        ExportSummary(str(out), "sqlite"),
        MIXED,
        {"delivery_eta:mixed": MIXED}.get,
    )

    assert (summary.rows_written, summary.skipped_other_contract) == (len(labels), 0)
    frame = _read(out, MIXED)
    expected = {logged.ids[row]: logged.expected(row, actual) for row, actual in labels.items()}
    created = logged.block.created_at
    _check_rows(frame, expected, (created + 1, created + 1), MIXED)
    # The random orders reached every value: unseen vehicles came back as "other".
    assert set(frame["weather"]) == {"sunny", "rain", "fog"}
    assert set(frame["vehicle"]) == {"bike", "car", "other"}
    assert set(frame["city_tier"]) == {1, 2, 3} and set(frame["festival"]) == {True, False}


def test_blocks_of_a_model_with_other_inputs_are_skipped_and_counted(tmp_path: Path) -> None:
    out = tmp_path / "labels.parquet"
    ours, other = _logged(3, 1), _logged(4, 2, contract=MIXED, model="delivery_eta:mixed")
    unknown = _logged(2, 3, model="delivery_eta:gone")  # its model is not in the store
    # Same inputs as the default, a narrower range: rows it refuses cannot train.
    narrower_text = (
        (ROOT / "models" / "contract" / "default.yaml")
        .read_text()
        .replace("maximum: 50\n", "maximum: 4\n")
        .replace("distance_km: 7.9", "distance_km: 3.9")  # the batch example stays in range
    )
    narrower = parse_contract(narrower_text)
    wide = _logged(30, 4, model="delivery_eta:wide")
    contracts = {MODEL: DEFAULT, "delivery_eta:mixed": MIXED, "delivery_eta:wide": DEFAULT}
    labels = [
        (ours, {0: 30.0, 2: 31.0}),
        (other, {1: 20.0, 3: 21.0}),
        (unknown, {1: 40.0}),
        (wide, dict.fromkeys(range(30), 25.0)),
    ]

    summary = write_export(
        _pages(*labels),
        out,
        ExportSummary(str(out), "sqlite"),
        narrower,
        contracts.get,
    )

    distance = narrower.fields_of_kind("number")[0]
    kept = [
        (item, row)
        for item, rows in labels
        if item is not other
        for row in rows
        if item.orders[row][distance] <= 4
    ]
    assert 0 < len(kept) < 33  # the narrower range dropped some rows, kept others
    assert summary.labels_seen == 35
    assert summary.skipped_other_contract == 35 - len(kept)
    assert summary.rows_written == len(kept)
    assert summary.rows_model_not_stored == sum(1 for item, _ in kept if item is unknown)
    frame = _read(out, narrower)
    assert sorted(frame["prediction_id"]) == sorted(item.ids[row] for item, row in kept)


# -- SQLite -----------------------------------------------------------------------------------


async def test_sqlite_export_writes_the_labelled_rows_in_the_training_schema(
    tmp_path: Path,
) -> None:
    path, out = tmp_path / "p.sqlite3", tmp_path / "labels.parquet"
    log = SQLitePredictionLog(path, retention_s=3600)
    batch, single, unlabelled = _logged(5, 1), _logged(1, 2), _logged(3, 3)
    old = _logged(2, 4, with_ids=False)  # as the code before the ids logged it
    for logged in (batch, single, unlabelled, old):
        log.append(logged.block)
    actuals = {(batch, 0): 31.5, (batch, 3): 44.0, (single, 0): 12.25}
    before = time.time()
    try:
        for (logged, row), actual in actuals.items():
            assert (await log.attach_feedback(logged.ids[row], actual)).status == "joined"
        assert (await log.attach_feedback(old.ids[1], 50.0)).status == "joined"
    finally:
        await log.close()
    after = time.time()

    summary = export_labels(out, LogLocation("sqlite", path=path))

    assert _summary(summary) == (3, 4, 1, 0)
    expected = {logged.ids[row]: logged.expected(row, a) for (logged, row), a in actuals.items()}
    _check_rows(_read(out), expected, (before, after))
    assert not list(tmp_path.glob(".labels.parquet.*"))  # the temporary file was renamed


async def test_sqlite_labels_whose_block_is_gone_are_counted(tmp_path: Path) -> None:
    path, out = tmp_path / "p.sqlite3", tmp_path / "labels.parquet"
    log = SQLitePredictionLog(path, retention_s=3600)
    kept, evicted = _logged(2, 1), _logged(2, 2)
    log.append(kept.block)
    log.append(evicted.block)
    try:
        for logged in (kept, evicted):
            for row in (0, 1):
                assert (await log.attach_feedback(logged.ids[row], 20.0)).status == "joined"
    finally:
        await log.close()
    with sqlite3.connect(path) as db:  # what the size cap does: the block goes, its labels stay
        db.execute("DELETE FROM prediction_blocks WHERE block_key = ?", (evicted.block.block_key,))

    summary = export_labels(out, LogLocation("sqlite", path=path))

    assert _summary(summary) == (2, 4, 0, 2)
    assert sorted(_read(out)["prediction_id"]) == sorted(kept.ids)


async def test_sqlite_since_keeps_the_labels_given_in_the_last_hours(tmp_path: Path) -> None:
    path, out = tmp_path / "p.sqlite3", tmp_path / "labels.parquet"
    log = SQLitePredictionLog(path, retention_s=6 * 3600)
    logged = _logged(2, 1)
    log.append(logged.block)
    try:
        for row in (0, 1):
            assert (await log.attach_feedback(logged.ids[row], 20.0)).status == "joined"
    finally:
        await log.close()
    with sqlite3.connect(path) as db:
        db.execute(
            "UPDATE feedback SET feedback_at = ? WHERE prediction_id = ?",
            (time.time() - 3 * 3600, logged.ids[0]),
        )

    summary = export_labels(out, LogLocation("sqlite", path=path), since_hours=2)

    assert _summary(summary) == (1, 1, 0, 0)
    assert list(_read(out)["prediction_id"]) == [logged.ids[1]]
    assert _summary(export_labels(out, LogLocation("sqlite", path=path), since_hours=4)) == (
        2,
        2,
        0,
        0,
    )


def _old_file(path: Path, logged: Logged, labelled_row: int, actual: float) -> None:
    """A log file as the code before the ids wrote it: one block, one label."""
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA journal_mode=WAL")
        for statement in OLD_SCHEMA:
            db.execute(statement)
        block = logged.block
        db.execute(
            "INSERT INTO prediction_blocks VALUES (?, ?, ?, ?, ?, ?)",
            (block.block_key, block.created_at, block.model_version, len(block), *block.encoded()),
        )
        db.execute(
            "INSERT INTO feedback VALUES (?, ?, ?)",
            (logged.ids[labelled_row], actual, time.time()),
        )
    db.close()


def test_a_file_of_an_older_release_is_refused_by_the_export_and_the_service(
    tmp_path: Path,
) -> None:
    path, out = tmp_path / "p.sqlite3", tmp_path / "labels.parquet"
    _old_file(path, _logged(3, 1, with_ids=False), labelled_row=2, actual=40.0)

    # Refused in one line saying what to do, and left as it was: never migrated.
    with pytest.raises(ExportError, match=r"older release \(no column entity_ids, "):
        export_labels(out, LogLocation("sqlite", path=path))
    assert not out.exists()
    with pytest.raises(OutdatedLogFile, match=r"docs/prediction-log\.md"):
        SQLitePredictionLog(path, retention_s=3600)
    assert "older release" in str(unusable_reason(path))  # the service refuses to start
    with sqlite3.connect(path) as db:
        columns = [row[1] for row in db.execute("PRAGMA table_info(prediction_blocks)")]
    db.close()
    assert "entity_ids" not in columns


async def test_sqlite_export_reads_more_labels_than_one_page(tmp_path: Path) -> None:
    path, out = tmp_path / "p.sqlite3", tmp_path / "labels.parquet"
    log = SQLitePredictionLog(path, retention_s=3600)
    big = _logged(12_500, 1)  # one request: its labels span two pages of 10,000
    singles = [_logged(1, 100 + i) for i in range(30)]
    for logged in (big, *singles):
        log.append(logged.block)
    await log.flush()
    try:
        for logged in singles:
            assert (await log.attach_feedback(logged.ids[0], 25.0)).status == "joined"
    finally:
        await log.close()
    labelled_rows = range(12_001)
    # 12,001 labels through attach_feedback would take a while: the same rows, straight in.
    with sqlite3.connect(path) as db:
        db.executemany(
            "INSERT INTO feedback VALUES (?, ?, ?)",
            [(big.ids[row], 10.0 + row / 1000, time.time()) for row in labelled_rows],
        )
    assert len(labelled_rows) > LABEL_PAGE

    summary = export_labels(out, LogLocation("sqlite", path=path))

    assert _summary(summary) == (12_031, 12_031, 0, 0)
    frame = _read(out)
    assert frame["prediction_id"].is_unique and len(frame) == 12_031
    expected = {big.ids[row]: big.expected(row, 10.0 + row / 1000) for row in labelled_rows}
    expected |= {logged.ids[0]: logged.expected(0, 25.0) for logged in singles}
    for row in frame.sample(200, random_state=0).to_dict("records"):
        want = expected[row["prediction_id"]]
        for name in (*DEFAULT.fields, DEFAULT.target.column):
            assert row[name] == want[name], name
    assert set(frame["prediction_id"]) == set(expected)
    assert pq.ParquetFile(out).num_row_groups >= 2  # written as it went, not all at the end

    # Small pages and groups: every label exactly once, never more blocks at a time than asked.
    with SQLiteLogReader(path) as reader:
        pages = list(reader.labelled_blocks(page=500, group=3))
    assert max(len(page) for page in pages) <= 3 and len(pages) > 30 // 3
    read = [label.prediction_id for page in pages for entry in page for label in entry.labels]
    assert len(read) == len(set(read)) == 12_031


# -- Redis ------------------------------------------------------------------------------------


@pytest.mark.redis
async def test_redis_export_writes_the_labelled_rows_in_the_training_schema(
    redis_server,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    prefix, out = "test:block:", tmp_path / "labels.parquet"
    log = RedisPredictionLog(redis_server.url, retention_s=3600, key_prefix=prefix)
    batch, single, unlabelled = _logged(5, 1), _logged(1, 2), _logged(3, 3)
    old = _logged(2, 4, with_ids=False)
    for logged in (batch, single, unlabelled, old):
        log.append(logged.block)
    actuals = {(batch, 1): 31.5, (batch, 4): 44.0, (single, 0): 12.25}
    before = time.time()
    try:
        for (logged, row), actual in actuals.items():
            assert (await log.attach_feedback(logged.ids[row], actual)).status == "joined"
        assert (await log.attach_feedback(old.ids[0], 50.0)).status == "joined"
    finally:
        await log.close()
    after = time.time()
    client = redis.Redis.from_url(redis_server.url)
    # Around the log: a key under the prefix that is no block, and the feature snapshot's keys.
    client.set(prefix + "not-a-block", "x")
    client.hset("delivery_eta:snapshot:r_1", mapping={"actual:0": "1", "a": "b", "c": "d"})
    client.close()

    summary = export_labels(
        out, LogLocation("redis", redis_url=redis_server.url, redis_prefix=prefix)
    )

    assert _summary(summary) == (3, 4, 1, 0)
    expected = {logged.ids[row]: logged.expected(row, a) for (logged, row), a in actuals.items()}
    _check_rows(_read(out), expected, (before, after))


@pytest.mark.redis
async def test_redis_export_reads_in_pages_and_ignores_hashes_of_the_old_format(
    redis_server,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    prefix, out = "delivery_eta:block:", tmp_path / "labels.parquet"
    log = RedisPredictionLog(redis_server.url, retention_s=3600)
    blocks = [_logged(1 + i % 3, i) for i in range(40)]
    for logged in blocks:
        log.append(logged.block)
    expected = {}
    try:
        for i, logged in enumerate(blocks[:25]):
            row = i % len(logged.ids)
            assert (await log.attach_feedback(logged.ids[row], 20.0 + i)).status == "joined"
            expected[logged.ids[row]] = logged.expected(row, 20.0 + i)
    finally:
        await log.close()
    # A hash per request with a label, as the release before the slot hashes wrote them: not
    # read (docs/prediction-log.md, "Migrating an old log"); it expires with its TTL.
    client = redis.Redis.from_url(redis_server.url)
    legacy = blocks[30]
    client.hset(
        prefix + legacy.block.block_key,
        mapping={"created_at": repr(time.time()), "rows": 1, "actual:0": repr(33.0)},
    )
    client.close()
    with RedisLogReader(redis_server.url, prefix) as reader:
        pages = list(reader.labelled_blocks(page=4, group=2))
    assert max(len(page) for page in pages) <= 2 and len(pages) >= 13
    read = [label.prediction_id for page in pages for entry in page for label in entry.labels]
    assert sorted(read) == sorted(expected)

    summary = export_labels(
        out, LogLocation("redis", redis_url=redis_server.url, redis_prefix=prefix)
    )

    assert _summary(summary) == (25, 25, 0, 0)
    _check_rows(_read(out), expected, (0, time.time()))
    # Labels given before --since go.
    assert _summary(
        export_labels(
            out,
            LogLocation("redis", redis_url=redis_server.url, redis_prefix=prefix),
            since_hours=1e-9,
        )
    ) == (0, 0, 0, 0)


# -- the command line -------------------------------------------------------------------------


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    # An empty model store of its own: never the user's ~/bentoml (its models would decide
    # the export's contract).
    with tempfile.TemporaryDirectory(prefix="export-cli-home-") as home:
        return subprocess.run(
            [sys.executable, "-m", "operations.export_labels", *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            env={"BENTOML_HOME": home, **(env or {}), "PATH": "/usr/bin:/bin"},
        )


def _refused(result: subprocess.CompletedProcess[str], says: str) -> None:
    """Exit 2 with one line saying why, after at most the line naming the log it read."""
    assert result.returncode == 2, result
    assert result.stdout == ""
    *read, refusal = result.stderr.splitlines()
    assert len(read) <= 1 and all(line.startswith("export-labels: reading the ") for line in read)
    assert "Traceback" not in result.stderr, result.stderr
    assert refusal.startswith("export-labels: ") and says in refusal, result.stderr


def _main(capsys: pytest.CaptureFixture[str], *args: str) -> subprocess.CompletedProcess[str]:
    """``main`` in this process (faster than :func:`_cli`), as a finished command."""
    code = main(list(args))
    said = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, said.out, said.err)


async def test_the_command_line_reads_the_service_settings_and_says_what_it_did(
    tmp_path: Path,
) -> None:
    path, out = tmp_path / "state" / "p.sqlite3", tmp_path / "labels.parquet"
    log = SQLitePredictionLog(path, retention_s=3600)
    logged = _logged(2, 1)
    log.append(logged.block)
    try:
        assert (await log.attach_feedback(logged.ids[1], 18.0)).status == "joined"
    finally:
        await log.close()

    # The log the service's settings name, without --path.
    result = _cli("--out", str(out), env={"DELIVERY_ETA_PREDICTION_LOG_PATH": str(path)})

    assert result.returncode == 0, result.stderr
    assert result.stderr == f"export-labels: reading the sqlite log {path}\n"
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    assert json.loads(lines[0]) == {
        "out": str(out),
        "backend": "sqlite",
        "rows_written": 1,
        "labels_seen": 1,
        "skipped_no_ids": 0,
        "skipped_block_missing": 0,
        "skipped_other_contract": 0,
        "rows_model_not_stored": 1,
        "contract": "default contract (no served model in the model store)",
        "since_hours": None,
        "message": "wrote 1 labelled predictions",
    }
    assert list(_read(out)["prediction_id"]) == [logged.ids[1]]


async def test_an_export_without_labels_writes_an_empty_file_with_the_schema(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, out = tmp_path / "p.sqlite3", tmp_path / "labels.parquet"
    log = SQLitePredictionLog(path, retention_s=3600)
    log.append(_logged(3, 1).block)  # predictions, none labelled
    await log.close()

    assert main(["--out", str(out), "--path", str(path)]) == 0

    said = json.loads(capsys.readouterr().out)
    assert said["rows_written"] == 0 and "empty file with the schema" in said["message"]
    assert pq.read_schema(out).names == export_schema(DEFAULT).names
    assert _read(out).empty


def test_the_command_line_refuses_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "labels.parquet"
    missing = tmp_path / "missing.sqlite3"
    _refused(_cli("--out", str(out), "--path", str(missing)), "does not exist")
    assert not missing.exists()  # never created
    (tmp_path / "junk").write_text("not sqlite " * 100)
    _refused(_main(capsys, "--out", str(out), "--path", str(tmp_path / "junk")), "not a database")
    other = tmp_path / "other.sqlite3"
    sqlite3.connect(other).execute("CREATE TABLE other (a)").connection.close()
    _refused(_main(capsys, "--out", str(out), "--path", str(other)), "is not a prediction log")

    log = tmp_path / "p.sqlite3"
    asyncio.run(SQLitePredictionLog(log, retention_s=3600).close())
    nowhere = str(tmp_path / "no-such-dir" / "x.parquet")
    _refused(_main(capsys, "--out", nowhere, "--path", str(log)), "cannot write --out")
    _refused(_main(capsys, "--out", str(tmp_path), "--path", str(log)), "is a directory")
    unreachable = ("--backend", "redis", "--redis-url", "redis://:secret@127.0.0.1:1/0")
    refused = _main(capsys, "--out", str(out), *unreachable)
    _refused(refused, "ConnectionError")
    assert "secret" not in refused.stderr
    _refused(
        _main(capsys, "--out", str(out), "--backend", "redis"), "DELIVERY_ETA_REDIS_URL must be set"
    )
    _refused(_main(capsys, "--out", str(out), "--path", str(log), "--since", "0"), "--since")
    assert not out.exists() and not list(tmp_path.rglob("*.tmp"))


def test_the_export_is_a_training_file(tmp_path: Path) -> None:
    """What train.py --data reads: the trainer's own check accepts the exported file, every
    row, with the values the requests sent."""
    from models.training.order_history import read_order_history

    out = tmp_path / "labels.parquet"
    logged = _logged(300, 9)
    labels = {row: 15.0 + row / 7 for row in range(300)}
    write_export(
        _pages((logged, labels)),
        out,
        ExportSummary(str(out), "sqlite"),
        DEFAULT,
        {MODEL: DEFAULT}.get,
    )

    orders, report, _ = read_order_history(out, min_rows=1, min_days=0)

    assert report.rows_dropped == 0 and len(orders) == 300
    first = DEFAULT.entity_fields[0]
    assert sorted(orders[first].astype(str)) == sorted(o[first] for o in logged.orders)


def test_a_contract_without_entities_needs_no_ids(tmp_path: Path) -> None:
    out = tmp_path / "labels.parquet"
    plain = parse_contract(
        """
target: {column: minutes}
timestamp: {column: at}
fields:
  weather: {kind: category, values: [sunny, rain], example: rain}
  km: {kind: number, minimum: 0, maximum: 30, example: 2.5}
"""
    )
    logged = _logged(6, 3, contract=plain, with_ids=False)
    labels = {0: 12.0, 5: 40.0}
    summary = write_export(_pages((logged, labels)), out, ExportSummary(str(out), "sqlite"), plain)
    assert (summary.rows_written, summary.skipped_no_ids) == (2, 0)
    frame = _read(out, plain)
    assert list(frame.columns[:4]) == ["at", "weather", "km", "minutes"]
    assert list(frame["minutes"]) == [12.0, 40.0]
