"""Which column is the target (the delivery time) and which the timestamp (the order time):
given with ``--target`` / ``--timestamp`` or detected by name, and the contract blocks that
declare them."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd

from models.contract.draft.errors import DraftError
from models.contract.draft.fields import NAME_RULE, fmt, is_contract_name
from models.contract.draft.profiling import Profile
from models.contract.draft.rules import observed

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


def choose_target(profiles: dict[str, Profile], given: str | None) -> tuple[str, str]:
    """(the target column, how it was chosen): a positive number column."""

    def positive(p: Profile) -> bool:
        if p.kind != "number" or p.numbers is None:
            return False
        finite = p.finite_numbers()
        return bool(finite.size) and bool((finite > 0).all())

    if given is not None:
        what = "a positive number column (the delivery time in minutes)"
        return _given(profiles, given, "--target", positive, what), "given with --target"
    candidates = [n for n, p in profiles.items() if positive(p) and TARGET_NAME.match(n.lower())]
    chosen = _detected(candidates, PREFERRED_TARGETS, "the target")
    if chosen is not None:
        return chosen, "detected by its name"
    others = [n for n, p in profiles.items() if positive(p)]
    raise _undecided(
        "the target (the actual delivery time in minutes, a positive number)",
        "--target",
        candidates or others,
        "the file has no positive number column",
    )


def choose_timestamp(profiles: dict[str, Profile], given: str | None) -> tuple[str, str]:
    """(the order-time column, how it was chosen)."""

    def time(p: Profile) -> bool:
        return p.kind == "time"

    if given is not None:
        what = "a column of times (ISO 8601 text or a timestamp)"
        return _given(profiles, given, "--timestamp", time, what), "given with --timestamp"
    candidates = [n for n, p in profiles.items() if time(p)]
    chosen = _detected(candidates, PREFERRED_TIMESTAMPS, "the timestamp")
    if chosen is not None:
        how = "the file's only time column" if len(candidates) == 1 else "detected by its name"
        return chosen, how
    raise _undecided(
        "the order time",
        "--timestamp",
        candidates,
        "no column holds times (ISO 8601 text or a timestamp)",
    )


def _given(
    profiles: dict[str, Profile], given: str, flag: str, fits: Callable[[Profile], bool], what: str
) -> str:
    """The column named with ``flag``, if it exists, ``fits`` and has a contract name."""
    if given not in profiles:
        raise DraftError(f"{flag} {given}: no such column", exit_code=2)
    if not fits(profiles[given]):
        raise DraftError(f"{flag} {given}: not {what}")
    _check_file_name(given, flag)
    return given


def _detected(candidates: list[str], preferred: Sequence[str], what: str) -> str | None:
    """The only candidate, else the first preferred name among them; None: undecided."""
    named = [n for n in preferred if n in candidates]
    if len(candidates) == 1 or named:
        chosen = named[0] if named else candidates[0]
        _check_file_name(chosen, what)
        return chosen
    return None


def _undecided(question: str, flag: str, candidates: list[str], none: str) -> DraftError:
    """The error asking for ``flag``, listing the candidates (or saying there are ``none``)."""
    return DraftError(
        f"cannot tell which column is {question}: pass {flag} COLUMN; "
        + (f"candidates: {', '.join(candidates)}" if candidates else none),
        exit_code=2,
    )


def _check_file_name(name: str, what: str) -> None:
    if not is_contract_name(name):
        raise DraftError(
            f"{what} column {name!r} is not a contract name ({NAME_RULE}): rename it in the export"
        )


def target_block(profile: Profile, how: str) -> tuple[dict[str, Any], str]:
    """The ``target:`` keys and the comment above them."""
    seen = observed(profile, integral=False)
    spec = {
        "column": profile.name,
        "minimum": seen.minimum,
        "maximum": seen.maximum,
        "description": (
            f"actual minutes from order to door; observed {seen.span}, median {fmt(seen.median)}"
        ),
    }
    note = (
        f"target {how}: {seen.span} over {seen.rows} rows; a training row outside "
        "minimum..maximum is refused"
    )
    if profile.missing or profile.not_numbers:
        note += f"; {profile.missing + profile.not_numbers:,} row(s) without a number are refused"
    return spec, note


def timestamp_block(profile: Profile, how: str) -> tuple[dict[str, Any], str]:
    """The ``timestamp:`` keys and the comment above them."""
    assert profile.times is not None
    first, last = profile.times.min(), profile.times.max()
    span = (last - first) / pd.Timedelta(days=1)
    spec = {"column": profile.name}
    note = (
        f"timestamp {how}: {first:%Y-%m-%d %H:%M} .. {last:%Y-%m-%d %H:%M} UTC "
        f"({span:.0f} days); times without an offset are UTC"
    )
    return spec, note
