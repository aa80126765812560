"""What the check of an order history found: the error that stops training, each problem
with example rows, the notes on rows taken as the contract says, and the whole report as a
user reads it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SAMPLE_ROWS = 5
"""Offending row numbers shown per problem."""
SAMPLE_VALUES = 5
"""Offending values shown per problem (a category's unknown values)."""


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


MAPPED_TO_OTHER = "with a value the contract does not list, mapped to"
