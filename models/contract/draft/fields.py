"""What the rules decide per column -- a :class:`DraftedField` or a :class:`LeftOut` -- and the
wording their notes and reasons share."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from models.contract.draft.profiling import Profile
from models.contract.spec import NAME_PATTERN

NAME_RULE = "lower-case letters, digits and _, starting with a letter"
"""What a contract name is, as the reasons say it."""


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


def no_signal(column: str, value: str) -> LeftOut:
    """A column holding one value (``value`` as the draft shows it) in every row."""
    return LeftOut(column, f"one value ({value}) in every row: no signal")


def row_id(column: str, rows: int) -> LeftOut:
    """A column whose ``rows`` values are all distinct."""
    return LeftOut(column, f"every value distinct ({rows:,} rows): a row id, not a feature")


def with_missing(profile: Profile, drafted: DraftedField, typical: Any) -> DraftedField:
    """An optional field with its typical value as the default when some rows are empty."""
    if not profile.missing:
        return drafted
    spec = {**drafted.spec, "required": False, "default": typical}
    note = (
        f"empty in {profile.missing:,} of {profile.rows:,} rows ({missing_share(profile)}): "
        f"optional, an empty cell or a request without it takes the default {typical!r}"
    )
    return DraftedField(
        drafted.name, drafted.kind, spec, [*drafted.notes, note], drafted.value_notes
    )


def is_contract_name(name: str) -> bool:
    """``name`` may name a field (see :data:`NAME_RULE`)."""
    return re.fullmatch(NAME_PATTERN, name) is not None


def fmt(value: float) -> str:
    """A number as written in the draft: no exponent, no float noise (0.1, not
    0.1000000000000000055)."""
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return np.format_float_positional(value, precision=6, unique=True, fractional=False, trim="-")


def missing_share(profile: Profile) -> str:
    """The share of a column's rows that are empty, e.g. ``2.5%``."""
    return f"{profile.missing / profile.rows:.1%}"
