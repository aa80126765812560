"""Text (and id) columns: an ``entity``, a ``category`` of its frequent values, or left out
(free text, row ids, ids repeated too rarely for an entity's mean)."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import numpy as np

from models.contract.draft.fields import (
    DraftedField,
    LeftOut,
    fmt,
    no_signal,
    row_id,
    with_missing,
)
from models.contract.draft.profiling import Profile, TextCounts
from models.contract.spec import ENTITY_ID_MAX_LENGTH, OTHER_VALUE_DEFAULT

DEFAULT_MAX_CATEGORIES = 50
"""Most values a text column may have to be drafted as a category."""
RARE_SHARE = 0.001
"""A category value seen in fewer rows than this share is left to ``on_unseen: other``."""
ENTITY_MIN_MEDIAN_ORDERS = 5
"""An id column is an entity when its ids have at least this many orders each (median)."""
CROPPED_CATEGORY_COVERAGE = 0.95
"""Text with more values than the cap is still a category if the kept values cover this share."""
ID_NAME = re.compile(r"(^|_)id$")


def text_counts(profile: Profile) -> TextCounts:
    """The whole file's value counts when they were tracked, else the sample's."""
    totals = profile.totals
    if totals is not None and totals.counts is not None:
        values = list(totals.counts)
        return TextCounts.of(values, np.array([totals.counts[v] for v in values]), exact=True)
    assert profile.counts is not None
    if not profile.sampled:
        return dataclasses.replace(profile.counts, exact=True)
    return profile.counts


def text_field(
    profile: Profile, counts: TextCounts, max_categories: int, *, ids_from_numbers: bool
) -> DraftedField | LeftOut:
    """An entity, a category, or left out (free text, ids repeated too rarely)."""
    name = profile.name
    distinct, present = counts.distinct, counts.present
    if distinct == 1:
        return no_signal(name, repr(counts.top[0][0]))
    # A sample sees each id fewer times than the file holds it: scale the median up.
    median_orders = counts.median * (1.0 if counts.exact else profile.scale)
    id_name = bool(ID_NAME.search(name))
    if (id_name or distinct > max_categories) and counts.invalid_id is None:
        if median_orders >= ENTITY_MIN_MEDIAN_ORDERS:
            return _entity_field(profile, counts, median_orders, id_name)
        if distinct == present:
            return row_id(name, present)
        if id_name or ids_from_numbers:
            return LeftOut(
                name,
                f"{distinct:,} distinct ids over {present:,} rows, "
                f"{_median_of(counts, median_orders)} order(s) each: too few for an entity's "
                f"mean delivery time (an entity needs a median of {ENTITY_MIN_MEDIAN_ORDERS})",
            )
    if id_name and counts.invalid_id is not None:
        return LeftOut(
            name,
            f"ids like {counts.invalid_id[:40]!r} are not entity ids (1-{ENTITY_ID_MAX_LENGTH} "
            "characters of A-Z a-z 0-9 _ . : -)",
        )
    kept = [(v, c) for v, c in counts.top[:max_categories] if c >= RARE_SHARE * present]
    covered = sum(c for _, c in kept) / present
    if distinct > max_categories and covered < CROPPED_CATEGORY_COVERAGE:
        return LeftOut(
            name,
            f"text with {distinct:,} distinct values over {present:,} rows; the "
            f"{len(kept)} most frequent cover {covered:.1%} of them: free text, not a category",
        )
    return _category_field(profile, counts, kept)


def _median_of(counts: TextCounts, median_orders: float) -> str:
    """``a median of 7.5`` (``about ...`` when the ids were counted in the sample only)."""
    about = "" if counts.exact else "about "
    return f"{about}a median of {fmt(round(median_orders, 1))}"


def _entity_field(
    profile: Profile, counts: TextCounts, median_orders: float, id_name: bool
) -> DraftedField:
    why = "its name ends in _id" if id_name else "more distinct values than the category cap"
    spec: dict[str, Any] = {
        "kind": "entity",
        "description": (
            f"id, {counts.distinct:,} distinct over {counts.present:,} rows; the model uses its "
            "mean delivery time"
        ),
        "example": counts.top[0][0],
    }
    notes = [
        f"entity: {counts.distinct:,} distinct ids{'' if counts.exact else ' in the sample'}, "
        f"{_median_of(counts, median_orders)} orders each ({why}); ids with "
        "fewer than min_orders (default 5) history orders get the overall mean; monotonic: "
        "increasing (the default) -- a slower id's mean only lengthens a delivery"
    ]
    if profile.missing:
        notes.append(
            f"{profile.missing:,} row(s) have no id: training refuses them (an entity is "
            "required); fill them in the export or train with --drop-invalid"
        )
    return DraftedField(profile.name, "entity", spec, notes)


def _category_field(
    profile: Profile, counts: TextCounts, kept: list[tuple[str, int]]
) -> DraftedField:
    present = counts.present
    values = [v for v, _ in kept]
    spec: dict[str, Any] = {
        "kind": "category",
        "description": f"category, {counts.distinct} values over {present:,} rows",
        "values": values,
    }
    notes = [f"category: {counts.distinct} distinct values over {present:,} rows, by frequency"]
    tail_values = counts.distinct - len(kept)
    if tail_values:
        tail_rows = present - sum(c for _, c in kept)
        tail = counts.top[len(kept) :]  # the top runs most frequent first: kept is a prefix
        shown = ", ".join(f"{v!r} ({c:,})" for v, c in tail[:5])
        more = f" and {tail_values - 5:,} more" if tail_values > 5 else ""
        other = next(
            o for o in (OTHER_VALUE_DEFAULT, "other_value", "__other__") if o not in values
        )
        spec["on_unseen"] = "other"
        if other != OTHER_VALUE_DEFAULT:
            spec["other_value"] = other
        spec["description"] += f" ({tail_values} rare ones map to {other!r})"
        notes.append(
            f"{tail_values} rare value(s) in {tail_rows:,} rows ({tail_rows / present:.2%}), "
            f"each under {RARE_SHARE:.1%} of rows or beyond the cap, map to {other!r}: "
            f"{shown}{more}"
        )
        notes.append("on_unseen: other -- a value not listed gets the 'other' category too")
    else:
        notes.append(
            "on_unseen: refuse (the default) -- a value not listed is a 400 naming the allowed "
            "values; set `on_unseen: other` to accept new values"
        )
    spec["example"] = values[0]
    value_notes = {v: f"{c / present:.1%}" for v, c in kept}
    drafted = DraftedField(profile.name, "category", spec, notes, value_notes)
    return with_missing(profile, drafted, values[0])
