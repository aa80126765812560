"""The draft as YAML text: a header comment (the source, the rows, the rules applied, what was
left out and why), then the target, the timestamp and the fields, each under its notes."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from models.contract.draft.categories import RARE_SHARE
from models.contract.draft.fields import DraftedField, LeftOut
from models.contract.draft.reading import Sample
from models.contract.draft.rules import RANGE_MARGIN

_SPEC_COMMENTS = {
    "monotonic": "or increasing / decreasing: the prediction may only rise / fall with it",
    "on_unseen": "refuse (400 listing the values) or other",
}


def render_yaml(
    sample: Sample,
    drafted: list[DraftedField],
    left_out: list[LeftOut],
    *,
    target: tuple[dict[str, Any], str],
    timestamp: tuple[dict[str, Any], str],
) -> str:
    """The contract as YAML text, with comments saying what was inferred from how many rows."""
    source = Path(sample.source).name
    files = f"{sample.files} {sample.format} file{'s' if sample.files > 1 else ''}"
    if sample.sampled:
        rows = (
            f"Every row was read ({sample.rows_total:,}): number ranges and category values "
            "count them all; kinds, medians, examples and entity repeats are inferred from a "
            f"uniform sample of {sample.rows:,} of them (--max-rows)."
        )
    elif sample.head:
        rows = (
            f"Inferred from its first {sample.rows:,} rows only (--head): a value or an extreme "
            "in later rows was not seen, and training refuses such rows; draft without --head "
            "to count every row."
        )
    else:
        rows = f"Inferred from all {sample.rows:,} rows."
    lines = [
        "# Feature contract drafted by `python -m models.contract draft` (make contract) from",
        *_wrapped(f"{sample.source} ({files}). {rows}", "# ", "# "),
        "#",
        "# Review it before training: every field is a request field of the API, a number",
        "# outside its bounds or a category value not listed is refused (400). Reference:",
        "# docs/contract.md. The rules the draft applied:",
        f"# - number / integer bounds: the observed range widened by {RANGE_MARGIN:.0%} of its "
        "width",
        "#   on each side, not below 0 for a column with no negative value;",
        "# - category values by frequency; values in under "
        f"{RARE_SHARE:.1%} of rows (or beyond the cap)",
        "#   map to `other` (on_unseen: other);",
        "# - monotonic is none everywhere: set increasing / decreasing on a field whose effect you",
        "#   know (e.g. a distance) and the model may only learn a prediction that rises / falls",
        "#   with it;",
        "# - cohorts (monitoring slices) are not drafted: add `cohort: {dimension: name, edges:",
        "#   [..]}` to a number, or `cohort: {dimension: name}` to a category or boolean.",
    ]
    if left_out:
        lines += ["#", "# Left out (declare one by hand if it is known when the order is placed):"]
        for skipped in left_out:
            lines += _wrapped(f"{skipped.column}: {skipped.reason}", "#   ", "#     ")
    lines += [
        "",
        "version: 1",
        f"description: {_string(f'Drafted from {source}: {len(drafted)} request fields.')}",
        "",
    ]
    for block_name, (spec, note) in (("target", target), ("timestamp", timestamp)):
        lines += _wrapped(note, "# ", "# ")
        lines.append(f"{block_name}:")
        lines += [f"  {key}: {_scalar(value, key)}" for key, value in spec.items()]
        lines.append("")
    lines.append("fields:")
    for index, item in enumerate(drafted):
        if index:
            lines.append("")
        for note in item.notes:
            lines += _wrapped(note, "  # ", "  #   ")
        lines.append(f"  {_key(item.name)}:")
        for key, value in item.spec.items():
            comment = f"  # {_SPEC_COMMENTS[key]}" if key in _SPEC_COMMENTS else ""
            if key == "values":
                lines.append("    values:")
                for entry in value:
                    share = item.value_notes.get(entry)
                    lines.append(f"      - {_scalar(entry)}" + (f"  # {share}" if share else ""))
            else:
                lines.append(f"    {key}: {_scalar(value, key)}{comment}")
    return "\n".join(lines) + "\n"


def _wrapped(text: str, first: str, rest: str, width: int = 96) -> list[str]:
    """``text`` as comment lines: ``first`` before the first, ``rest`` before the others."""
    lines = textwrap.wrap(text, width=width - len(rest), break_long_words=False) or [""]
    return [(first if i == 0 else rest) + line for i, line in enumerate(lines)]


def _key(name: str) -> str:
    """A field name as a YAML key (quoted when YAML would read it as something else: yes, on,
    null)."""
    return name if yaml.safe_load(name) == name else _string(name)


def _string(text: str) -> str:
    """``text`` as a double-quoted YAML string, on one line."""
    dumped = yaml.safe_dump(
        [text], default_flow_style=True, default_style='"', allow_unicode=True, width=1 << 20
    )
    return dumped.strip()[1:-1]


_PLAIN_KEYS = {"kind", "monotonic", "on_unseen", "column"}
"""Keys whose string values are keywords or column names, written unquoted."""


def _scalar(value: Any, key: str = "") -> str:
    """A YAML scalar: strings in double quotes (a value like ``no`` or ``1.0`` stays text),
    keywords and column names plain."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):  # the shortest text that reads back as the same float
        return np.format_float_positional(value, unique=True, trim="-")
    if key in _PLAIN_KEYS and isinstance(value, str) and yaml.safe_load(value) == value:
        return value
    return _string(str(value))
