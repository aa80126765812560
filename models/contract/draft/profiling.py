"""What one sampled column holds: a :class:`Profile` typed from all its values (numbers, a
flag, times, text or nothing), with :class:`TextCounts` for text.

CSV columns arrive as text: a text column is typed here, as true/false, numbers (at most
:data:`MAX_BAD_SHARE` of its rows not numbers), ISO 8601 times, or else text.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from models.contract.draft.reading import TRACKED_VALUES, ColumnTotals
from models.contract.spec import ENTITY_ID_MAX_LENGTH, ENTITY_ID_PATTERN

MAX_BAD_SHARE = 0.01
"""A column is numeric if at most this share of its values are not numbers (reported)."""
NOT_A_NUMBER_TEXT = re.compile(r"^0\d")
"""Text like ``007`` is a code, not the number 7 (leading zeros would be lost)."""
PROBE_VALUES = 1_000
"""Distinct values tried first: a column of ids is not parsed a million times as numbers."""


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

    @property
    def sampled(self) -> bool:
        """True when the file has more rows than the sample holds (``scale`` above 1)."""
        return self.scale > 1.0

    def finite_numbers(self) -> np.ndarray:
        """The sampled rows' numbers, without the missing ones (numeric and boolean columns)."""
        assert self.numbers is not None
        return self.numbers[np.isfinite(self.numbers)]


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
    return _profile_text(name, column, rows, missing)


def _profile_text(name: str, column: pa.ChunkedArray, rows: int, missing: int) -> Profile:
    """Each distinct value is parsed once; a row takes its value's result."""
    encoded = column.combine_chunks().dictionary_encode()
    dictionary = encoded.dictionary
    indices = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False)
    per_value = np.bincount(indices[indices >= 0], minlength=len(dictionary))
    present = rows - missing

    def per_row(parsed: np.ndarray, empty: Any) -> np.ndarray:
        """Each row's parsed value (``empty`` for a missing cell: its index is -1)."""
        return np.append(parsed, empty)[indices]

    if len(dictionary) <= 8:  # true/false in any letter case
        lowered = [str(v).strip().lower() for v in dictionary.to_pylist()]
        if set(lowered) <= {"true", "false"}:
            flags = np.array([v == "true" for v in lowered], dtype=np.float64)
            return Profile(
                name, "boolean", rows, missing, numbers=per_row(flags, np.nan), bool_text=True
            )

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
                numbers=per_row(parsed, np.nan),
                not_numbers=int(per_value[bad].sum()),
                not_number_examples=[str(dictionary[int(i)].as_py()) for i in bad[:3]],
            )

    times = _parsed_times(dictionary)
    if (
        times is not None
        and int(per_value[~np.isnat(times)].sum()) >= (1 - MAX_BAD_SHARE) * present
    ):
        per_time = pd.Series(per_row(times, np.datetime64("NaT")))
        return Profile(name, "time", rows, missing, times=per_time.dt.tz_localize("UTC"))

    counts = TextCounts.from_arrow(dictionary, per_value, exact=False)
    return Profile(name, "text", rows, missing, counts=counts)


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
