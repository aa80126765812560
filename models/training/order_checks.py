"""Checking an order history row by row against its contract: timestamps, entity ids,
categories and numbers parsed from whatever the file wrote, every bad value recorded as a
problem with example rows, duplicated and conflicting orders found; the rows come back in the
training code's names.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from models.contract import (
    ENTITY_ID_MAX_LENGTH,
    ENTITY_ID_PATTERN,
    BooleanField,
    CategoryField,
    EntityField,
    FeatureContract,
    IntegerField,
    NumberField,
)
from models.features import ORDER_TS, TARGET
from models.training.dataset import ORDER_KEY
from models.training.order_report import (
    MAPPED_TO_OTHER,
    SAMPLE_ROWS,
    SAMPLE_VALUES,
    Note,
    Problem,
)
from models.training.order_schema import allowed_values_text, number_text, truthy_range


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


class RowChecker:
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


def _check_entity(name: str, column: pa.ChunkedArray, checker: RowChecker) -> pd.Series:
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
    name: str, spec: CategoryField, column: pa.ChunkedArray, checker: RowChecker
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
                name, f"{MAPPED_TO_OTHER} {spec.other_value!r} (values {found}{more})", unseen_rows
            )
        else:
            checker.check(
                name,
                f"not one of the contract's values ({allowed_values_text(spec)}): found {found}{more}",
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
    checker: RowChecker,
) -> pd.Series:
    """A number, whole number or 0/1 column (``spec`` None: the target), as float64; whole
    kinds as int64."""
    low, high = bounds
    values, not_numbers = _as_numbers(column, truthy=truthy_range(spec))
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
        f"outside {number_text(low)}-{number_text(high)}",
        finite & ((values < low) | (values > high)),
    )
    if isinstance(spec, IntegerField | BooleanField):
        inside = finite & (values >= low) & (values <= high)
        what = "not 0 or 1" if truthy_range(spec) else "not a whole number"
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


def check_rows(
    table: pa.Table, contract: FeatureContract, id_column: str | None = None
) -> tuple[pd.DataFrame, RowChecker, pd.Series | None, np.ndarray]:
    """(the rows in the training code's names, the checker, the order ids if ``id_column``,
    the mask of rows repeating an earlier row with the same id and values: to drop)."""
    checker = RowChecker(table.num_rows)
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
