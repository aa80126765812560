"""The field each column becomes, or why it is left out (the rules of the package docstring):
names, times, emptiness, then numbers and flags here; text and ids in
:mod:`~models.contract.draft.categories`."""

from __future__ import annotations

import math
import re
from typing import Any, NamedTuple

import numpy as np

from models.contract.draft.categories import ID_NAME, text_counts, text_field
from models.contract.draft.fields import (
    NAME_RULE,
    DraftedField,
    LeftOut,
    fmt,
    is_contract_name,
    missing_share,
    no_signal,
    row_id,
    with_missing,
)
from models.contract.draft.profiling import Profile, TextCounts

RANGE_MARGIN = 0.10
"""Number and integer bounds: the observed range widened by this share of its width per side."""
MOST_EMPTY_SHARE = 0.5
"""A column empty in more rows than this share is left out."""
LEAK_CORRELATION = 0.99
"""A numeric column this correlated with the target is left out (known after delivery)."""


def decide(
    profile: Profile, target: np.ndarray, timestamp: Profile, max_categories: int
) -> DraftedField | LeftOut:
    """The field a column becomes, or why it is left out."""
    name = profile.name
    if not is_contract_name(name):
        suggestion = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
        hint = f" (e.g. {suggestion!r})" if is_contract_name(suggestion) else ""
        return LeftOut(
            name,
            f"its name is not a contract name ({NAME_RULE}); rename the column in the "
            f"export{hint} to use it",
        )
    if profile.kind == "empty":
        return LeftOut(name, f"empty in all {profile.rows:,} rows")
    if profile.kind == "time":
        return LeftOut(name, _time_reason(profile, timestamp))
    if profile.missing > MOST_EMPTY_SHARE * profile.rows:
        return LeftOut(
            name,
            f"empty in {profile.missing:,} of {profile.rows:,} rows ({missing_share(profile)})",
        )
    if profile.kind == "boolean":
        return _boolean_field(profile)
    if profile.kind == "number":
        return _number_rules(profile, target, max_categories)
    return text_field(profile, text_counts(profile), max_categories, ids_from_numbers=False)


def _time_reason(profile: Profile, timestamp: Profile) -> str:
    assert profile.times is not None and timestamp.times is not None
    both = profile.times.notna() & timestamp.times.notna()
    later = float((profile.times[both] > timestamp.times[both]).mean()) if both.any() else 0.0
    if later >= 0.99:
        return (
            f"a time, after {timestamp.name} in {later:.0%} of rows: known only after the order "
            "is placed"
        )
    return (
        "a time: a request carries no times; put what matters of it (e.g. the hour) in a "
        "column of its own"
    )


def _number_rules(
    profile: Profile, target: np.ndarray, max_categories: int
) -> DraftedField | LeftOut:
    """A numeric column: a flag, ids, a row id, a leak of the target, or a number field."""
    assert profile.numbers is not None
    name = profile.name
    finite = profile.finite_numbers()
    distinct = np.unique(finite)
    low, high = observed_range(profile)
    integral = bool(np.all(distinct == np.round(distinct)))
    integral = integral and (profile.totals is None or profile.totals.integral)
    if low == high:
        return no_signal(name, fmt(low))
    if integral and low >= 0 and high <= 1:
        return _boolean_field(profile)
    if integral and ID_NAME.search(name):
        distinct_ids, rows = np.unique(finite, return_counts=True)
        ids = TextCounts.of([fmt(v) for v in distinct_ids], rows, not profile.sampled)
        return text_field(profile, ids, max_categories, ids_from_numbers=True)
    if integral and len(distinct) == len(finite) and len(finite) >= 100:
        return row_id(name, len(finite))
    both = np.isfinite(profile.numbers) & np.isfinite(target)
    if both.sum() > 2:
        with np.errstate(invalid="ignore", divide="ignore"):
            r = float(np.corrcoef(profile.numbers[both], target[both])[0, 1])
        if abs(r) >= LEAK_CORRELATION:
            return LeftOut(
                name,
                f"follows the target almost exactly (correlation {r:.3f}): probably "
                "known only after delivery",
            )
    return _numeric_field(profile, integral)


def _boolean_field(profile: Profile) -> DraftedField | LeftOut:
    values = profile.finite_numbers()
    ones = int((values == 1).sum())
    if ones in (0, len(values)):
        only = ("true" if ones else "false") if profile.bool_text else str(int(bool(ones)))
        return no_signal(profile.name, only)
    typical = ones * 2 >= len(values)
    written: bool | int = typical if profile.bool_text else int(typical)
    form = "true/false" if profile.bool_text else "0/1"
    spec: dict[str, Any] = {
        "kind": "boolean",
        "description": (
            f"{form} flag, true in {ones / len(values):.1%} of {len(values):,} rows; "
            "the API takes true/false and 0/1"
        ),
        "example": written,
        "monotonic": "none",
    }
    notes = [f"boolean: only {form} values over {len(values):,} rows"]
    return with_missing(profile, DraftedField(profile.name, "boolean", spec, notes), written)


def _numeric_field(profile: Profile, integral: bool) -> DraftedField:
    seen = observed(profile, integral)
    example: float | int
    if integral:
        example = min(max(round(seen.median), int(seen.minimum)), int(seen.maximum))
        kind = "integer"
    else:
        example = min(max(float(f"{seen.median:.4g}"), seen.minimum), seen.maximum)
        kind = "number"
    spec: dict[str, Any] = {
        "kind": kind,
        "description": f"{kind}, observed {seen.span} over {seen.rows} rows",
        "minimum": seen.minimum,
        "maximum": seen.maximum,
        "example": example,
        "monotonic": "none",
    }
    clipped = " (not below 0: no value is negative)" if seen.low >= 0 and seen.minimum == 0 else ""
    notes = [
        f"{kind}: {'whole numbers' if integral else 'numbers'} {seen.span}, "
        f"median {fmt(seen.median)}; bounds widened by {RANGE_MARGIN:.0%} of the range{clipped}"
    ]
    if profile.not_numbers:
        examples = ", ".join(repr(v) for v in profile.not_number_examples) or "infinite values"
        notes.append(
            f"{profile.not_numbers:,} row(s) hold no number ({examples}): training refuses "
            "them; fix them in the export or train with --drop-invalid"
        )
    return with_missing(profile, DraftedField(profile.name, kind, spec, notes), example)


class Observed(NamedTuple):
    """A numeric column as its field (or the target) states it."""

    low: float
    high: float
    """The observed range (:func:`observed_range`)."""
    minimum: Any
    maximum: Any
    """The bounds: the range widened (:func:`widened`)."""
    median: float
    """Of the sampled values."""
    rows: str
    """The rows the range covers (:func:`rows_covered`)."""

    @property
    def span(self) -> str:
        """``low..high`` as the draft writes it."""
        return f"{fmt(self.low)}..{fmt(self.high)}"


def observed(profile: Profile, integral: bool) -> Observed:
    """The observed range of a numeric column, its widened bounds, its median and rows."""
    finite = profile.finite_numbers()
    low, high = observed_range(profile)
    minimum, maximum = widened(low, high, integral)
    return Observed(
        low, high, minimum, maximum, float(np.median(finite)), rows_covered(profile, len(finite))
    )


def observed_range(profile: Profile) -> tuple[float, float]:
    """(min, max) of a numeric column over every row read, else over the sample."""
    totals = profile.totals
    if totals is not None and totals.numeric and totals.minimum is not None:
        assert totals.maximum is not None
        return totals.minimum, totals.maximum
    finite = profile.finite_numbers()
    return float(finite.min()), float(finite.max())


def widened(low: float, high: float, integral: bool) -> tuple[Any, Any]:
    """The bounds ``low - margin .. high + margin`` rounded outwards (to whole numbers, or to
    three significant digits of the range), not below 0 when ``low`` is not negative."""
    margin = RANGE_MARGIN * (high - low)
    lower, upper = low - margin, high + margin
    if low >= 0:
        lower = max(lower, 0.0)
    if integral:
        return math.floor(lower), math.ceil(upper)
    exponent = math.floor(math.log10(high - low)) - 2
    step, decimals = 10.0**exponent, max(0, -exponent)
    minimum = round(math.floor(lower / step) * step, decimals)
    maximum = round(math.ceil(upper / step) * step, decimals)
    if low >= 0:
        minimum = max(minimum, 0.0)
    return minimum, maximum


def rows_covered(profile: Profile, sampled: int) -> str:
    """How many rows a whole-file statistic covers ("all 12,000,000"), else the sample's."""
    totals = profile.totals
    if profile.sampled and totals is not None and totals.numeric:
        return f"all {round(profile.rows * profile.scale):,}"
    return f"{sampled:,}"


def without_clashes(drafted: list[DraftedField]) -> tuple[list[DraftedField], list[LeftOut]]:
    """Drop a column named like an entity's aggregate (the model computes that one), or an
    entity whose aggregate name would not be a valid name."""
    aggregates = {}
    left_out = []
    kept = []
    for item in drafted:
        if item.kind == "entity":
            feature = f"{item.name.removesuffix('_id')}_avg_delivery_time"
            if not is_contract_name(feature):
                left_out.append(
                    LeftOut(item.name, f"its aggregate's name {feature!r} would be too long")
                )
                continue
            aggregates[feature] = item.name
        kept.append(item)
    final = []
    for item in kept:
        if item.name in aggregates:
            left_out.append(
                LeftOut(
                    item.name,
                    f"the name of {aggregates[item.name]}'s aggregate, which the model computes "
                    "from the history itself",
                )
            )
            continue
        final.append(item)
    return final, left_out
