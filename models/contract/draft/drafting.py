"""A file (or a read :class:`Sample`) -> a validated :class:`Draft`: each column profiled, the
target and timestamp chosen, every other column decided, the YAML rendered and parsed back."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from models.contract.draft.categories import DEFAULT_MAX_CATEGORIES
from models.contract.draft.errors import DraftError
from models.contract.draft.fields import DraftedField, LeftOut
from models.contract.draft.profiling import profile_column
from models.contract.draft.reading import DEFAULT_MAX_ROWS, Sample, read_sample
from models.contract.draft.rendering import render_yaml
from models.contract.draft.roles import (
    choose_target,
    choose_timestamp,
    target_block,
    timestamp_block,
)
from models.contract.draft.rules import decide, without_clashes
from models.contract.loading import ContractError, parse_contract
from models.contract.spec import MAX_CATEGORY_VALUES, MAX_FIELDS, FeatureContract


@dataclass(frozen=True)
class Draft:
    """The drafted contract, its YAML text, and what was decided per column."""

    contract: FeatureContract
    text: str
    fields: list[DraftedField]
    left_out: list[LeftOut]
    target: str
    timestamp: str
    rows: int
    rows_total: int

    def summary(self) -> str:
        """A few lines for the terminal."""
        kinds: dict[str, int] = {}
        for drafted in self.fields:
            kinds[drafted.kind] = kinds.get(drafted.kind, 0) + 1
        by_kind = ", ".join(f"{count} {kind}" for kind, count in kinds.items())
        rows = f"{self.rows:,} rows" + (
            f" (a uniform sample of {self.rows_total:,})" if self.rows < self.rows_total else ""
        )
        lines = [
            f"drafted {len(self.fields)} request fields ({by_kind}) from {rows}; "
            f"target {self.target}, timestamp {self.timestamp}"
        ]
        lines += [f"  left out {item.column}: {item.reason}" for item in self.left_out]
        return "\n".join(lines)


def draft_contract(
    path: str | Path,
    *,
    target: str | None = None,
    timestamp: str | None = None,
    max_categories: int = DEFAULT_MAX_CATEGORIES,
    max_rows: int = DEFAULT_MAX_ROWS,
    columns: Sequence[str] | None = None,
    exclude: Sequence[str] = (),
    head: bool = False,
) -> Draft:
    """Draft a contract from the order history at ``path``; raise :class:`DraftError` when
    the file cannot be read, has no usable column, has more than ``MAX_FIELDS`` of them, or
    the target or timestamp cannot be decided (``exit_code`` 2: pass the flag)."""
    if not 1 <= max_categories <= MAX_CATEGORY_VALUES:
        raise DraftError(f"--max-categories must be 1..{MAX_CATEGORY_VALUES}", exit_code=2)
    read = None
    if columns is not None:
        read = [*columns, *(c for c in (target, timestamp) if c and c not in columns)]
    sample = read_sample(path, max_rows=max_rows, columns=read, head=head)
    return draft_from_sample(
        sample,
        target=target,
        timestamp=timestamp,
        max_categories=max_categories,
        exclude=exclude,
    )


def draft_from_sample(
    sample: Sample,
    *,
    target: str | None = None,
    timestamp: str | None = None,
    max_categories: int = DEFAULT_MAX_CATEGORIES,
    exclude: Sequence[str] = (),
) -> Draft:
    """:func:`draft_contract` of an already read :class:`Sample`."""
    profiles = {}
    for name, column in sample.columns.items():
        profile = profile_column(name, column)
        profile.totals = sample.totals.get(name)
        profile.scale = sample.rows_total / sample.rows
        profiles[name] = profile
    unknown = [c for c in exclude if c not in profiles and c not in sample.left_out]
    if unknown:
        raise DraftError(f"--exclude: not in the file: {', '.join(unknown)}", exit_code=2)
    target_name, target_how = choose_target(profiles, target)
    timestamp_name, timestamp_how = choose_timestamp(profiles, timestamp)
    if target_name == timestamp_name:
        raise DraftError("the target and the timestamp must be two columns", exit_code=2)
    target_values = profiles[target_name].numbers
    assert target_values is not None

    drafted: list[DraftedField] = []
    left_out = [LeftOut(name, reason) for name, reason in sample.left_out.items()]
    for name, profile in profiles.items():
        if name in (target_name, timestamp_name):
            continue
        if name in exclude:
            left_out.append(LeftOut(name, "excluded with --exclude"))
            continue
        decision = decide(profile, target_values, profiles[timestamp_name], max_categories)
        if isinstance(decision, DraftedField):
            drafted.append(decision)
        else:
            left_out.append(decision)
    drafted, clashing = without_clashes(drafted)
    left_out += clashing
    order = {name: i for i, name in enumerate([*sample.columns, *sample.left_out])}
    left_out.sort(key=lambda item: order.get(item.column, len(order)))

    direct = [f for f in drafted if f.kind != "entity"]
    if not direct:
        raise DraftError(
            "no column can be a number, integer, boolean or category field; "
            + "; ".join(f"{item.column}: {item.reason}" for item in left_out)
        )
    if len(drafted) > MAX_FIELDS:
        raise DraftError(
            f"{len(drafted)} usable columns, but a contract declares at most {MAX_FIELDS} "
            "request fields (every one is a key of every request): choose them with "
            "--columns a,b,c or drop some with --exclude x,y",
            exit_code=2,
        )
    text = render_yaml(
        sample,
        drafted,
        left_out,
        target=target_block(profiles[target_name], target_how),
        timestamp=timestamp_block(profiles[timestamp_name], timestamp_how),
    )
    try:
        contract = parse_contract(text, "<draft>")
    except ContractError as exc:  # a bug in the drafter, not the user's data
        raise AssertionError(f"the drafted contract does not validate: {exc}\n{text}") from exc
    return Draft(
        contract=contract,
        text=text,
        fields=drafted,
        left_out=left_out,
        target=target_name,
        timestamp=timestamp_name,
        rows=sample.rows,
        rows_total=sample.rows_total,
    )
