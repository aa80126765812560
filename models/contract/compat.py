"""Whether a model with another contract can take the requests of the one serving now.

The rule (docs/shadow.md, "Contracts of two models"): a request the current contract accepts
must still be accepted, and mean the same, under the new one. Breaking changes -- the new
contract would refuse (400) or misread requests clients send today:

- a **new required field** (clients do not send it);
- a **removed field**, request override included (clients still send it, and the API refuses
  unknown fields);
- a field's **kind changed** (``number`` -> ``category``, ...), except an ``integer`` of range
  0..1 becoming a ``boolean`` (which takes 0/1 too, and ``true``/``false``: a widening);
- an optional field made **required**;
- a number's or integer's **range narrowed** (minimum raised or maximum lowered);
- a **category value removed**, or unseen values now **refused** instead of mapped to
  ``other``;
- an **override's range narrowed** (the target's maximum lowered: overrides are minutes up to
  it).

Widening changes pass, with a note: a new optional field, a required field made optional, a
wider range, new category values, unseen values now mapped to ``other`` instead of refused, and
an optional field's default changed (clients that leave it out get another value).

Pure: the promotion gate (``make promote``) refuses a breaking candidate unless
``--allow-api-break``.

The shadow's rule (:func:`challenger_input_problems`) is the other side of the same question:
not whether clients' requests stay valid, but whether the requests the served API accepts can
feed a challenger -- fields the challenger does not read are fine, one it needs and the
requests lack is not.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from models.contract.spec import CategoryField, FeatureContract, IntegerField, NumberField

Severity = Literal["break", "widening"]


@dataclass(frozen=True)
class ContractChange:
    """One difference between two contracts that clients can see."""

    field: str
    severity: Severity
    reason: str

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}"


@dataclass(frozen=True)
class Compatibility:
    """Every client-visible difference from the current contract to the new one."""

    changes: tuple[ContractChange, ...] = field(default_factory=tuple)

    @property
    def breaks(self) -> tuple[ContractChange, ...]:
        """Changes that would refuse or misread requests clients send today."""
        return tuple(c for c in self.changes if c.severity == "break")

    @property
    def widenings(self) -> tuple[ContractChange, ...]:
        """Changes every request of today survives."""
        return tuple(c for c in self.changes if c.severity == "widening")

    @property
    def compatible(self) -> bool:
        """True when no change breaks today's requests."""
        return not self.breaks

    @property
    def broken_fields(self) -> tuple[str, ...]:
        """The fields of :attr:`breaks`, each once, in order."""
        return tuple(dict.fromkeys(c.field for c in self.breaks))

    def lines(self) -> list[str]:
        """One line per change, breaks first: ``API break: field: reason``."""
        return [f"API break: {c}" for c in self.breaks] + [
            f"API widening: {c}" for c in self.widenings
        ]


def compare_contracts(current: FeatureContract, new: FeatureContract) -> Compatibility:
    """The client-visible changes from ``current`` (what clients send today) to ``new``."""
    changes: list[ContractChange] = []

    def add(name: str, severity: Severity, reason: str) -> None:
        changes.append(ContractChange(name, severity, reason))

    for name, old in current.fields.items():
        spec = new.fields.get(name)
        if spec is None:
            add(
                name,
                "break",
                "removed: clients still send it, and the API refuses unknown fields (400)",
            )
            continue
        if spec.kind != old.kind:
            if _is_zero_one(old) and spec.kind == "boolean":
                # The boolean takes 0 and 1 as well: every request of today stays valid.
                add(name, "widening", "integer 0..1 now boolean: also takes true/false")
            else:
                add(name, "break", f"kind changed from {old.kind} to {spec.kind}")
            continue
        if spec.required and not old.required:
            add(name, "break", "optional before, now required: clients may leave it out")
        elif old.required and not spec.required:
            add(name, "widening", f"now optional (default {_default(spec)!r})")
        elif not spec.required and _default(spec) != _default(old):
            add(
                name,
                "widening",
                f"default changed from {_default(old)!r} to {_default(spec)!r}: orders "
                "that leave it out are predicted with the new value",
            )
        if isinstance(old, NumberField | IntegerField):
            assert isinstance(spec, NumberField | IntegerField)
            changes += _range_changes(name, old, spec)
        elif isinstance(old, CategoryField):
            assert isinstance(spec, CategoryField)
            changes += _category_changes(name, old, spec)
    for name, spec in new.fields.items():
        if name in current.fields:
            continue
        if spec.required:
            add(name, "break", "new required field: clients do not send it yet")
        else:
            add(name, "widening", f"new optional field (default {_default(spec)!r})")
    changes += _override_changes(current, new)
    return Compatibility(tuple(changes))


def _default(spec: Any) -> Any:
    return getattr(spec, "default", None)


def _range_changes(
    name: str, old: NumberField | IntegerField, new: NumberField | IntegerField
) -> list[ContractChange]:
    changes = []
    if new.minimum > old.minimum or new.maximum < old.maximum:
        changes.append(
            ContractChange(
                name,
                "break",
                f"range narrowed from {old.minimum:g}..{old.maximum:g} to "
                f"{new.minimum:g}..{new.maximum:g}: values clients send may be refused",
            )
        )
    elif new.minimum < old.minimum or new.maximum > old.maximum:
        changes.append(
            ContractChange(
                name,
                "widening",
                f"range widened from {old.minimum:g}..{old.maximum:g} to "
                f"{new.minimum:g}..{new.maximum:g}",
            )
        )
    return changes


def _category_changes(name: str, old: CategoryField, new: CategoryField) -> list[ContractChange]:
    changes = []
    removed = [v for v in old.values if v not in new.values]
    added = [v for v in new.values if v not in old.values]
    if removed:
        fate = (
            f"now mapped to {new.other_value!r}"
            if new.on_unseen == "other"
            else "now refused (400)"
        )
        changes.append(
            ContractChange(name, "break", f"values removed: {_listed(removed)} ({fate})")
        )
    if old.on_unseen == "other" and new.on_unseen == "refuse":
        changes.append(
            ContractChange(
                name, "break", f"unseen values were mapped to {old.other_value!r}, now refused"
            )
        )
    elif old.on_unseen == "refuse" and new.on_unseen == "other":
        changes.append(
            ContractChange(
                name, "widening", f"unseen values now mapped to {new.other_value!r}, not refused"
            )
        )
    if added:
        changes.append(ContractChange(name, "widening", f"values added: {_listed(added)}"))
    return changes


def _override_changes(current: FeatureContract, new: FeatureContract) -> list[ContractChange]:
    """The entity overrides are request fields too: removed / narrowed ones break."""
    changes = []
    new_overrides = set(new.entity_features)
    for feature in current.entity_features:
        if feature not in new_overrides:
            changes.append(
                ContractChange(
                    feature,
                    "break",
                    "override removed: clients that send it get a 400 (unknown field)",
                )
            )
    old_high, new_high = current.override_bounds()[1], new.override_bounds()[1]
    kept = [f for f in current.entity_features if f in new_overrides]
    if kept and new_high < old_high:
        for feature in kept:
            changes.append(
                ContractChange(
                    feature,
                    "break",
                    f"override range narrowed from (0, {old_high:g}] to (0, {new_high:g}] "
                    "(the target's maximum)",
                )
            )
    return changes


def _is_zero_one(spec: Any) -> bool:
    """An ``integer`` field that takes exactly 0 and 1: a yes/no declared as a number."""
    return isinstance(spec, IntegerField) and (spec.minimum, spec.maximum) == (0, 1)


def _listed(values: list[Any], most: int = 8) -> str:
    shown = ", ".join(repr(v) for v in values[:most])
    return shown + (f" and {len(values) - most} more" if len(values) > most else "")


def challenger_input_problems(served: FeatureContract, challenger: FeatureContract) -> list[str]:
    """Why requests to a model of contract ``served`` cannot feed a challenger of contract
    ``challenger``, one problem per field (empty: every field it needs is carried, within the
    values it was trained on)."""
    problems = []
    for name, wanted in challenger.fields.items():
        given = served.fields.get(name)
        if given is None:
            if wanted.required:
                problems.append(
                    f"field {name!r} ({wanted.kind}) is required by the challenger "
                    "and not in the served API: requests do not carry it"
                )
            continue  # optional: the challenger takes its default
        if {given.kind, wanted.kind} == {"integer", "boolean"} and (
            _is_zero_one(given) or _is_zero_one(wanted)
        ):
            continue  # 0/1 either way: the model reads a boolean as 0/1
        if given.kind != wanted.kind:
            problems.append(
                f"field {name!r} is {wanted.kind} for the challenger, {given.kind} in the "
                "served API"
            )
        elif isinstance(given, NumberField | IntegerField) and isinstance(
            wanted, NumberField | IntegerField
        ):
            low, high, w_low, w_high = given.minimum, given.maximum, wanted.minimum, wanted.maximum
            if low < w_low or high > w_high:
                problems.append(
                    f"field {name!r}: the served API accepts {low:g}..{high:g}, the challenger "
                    f"was trained on {w_low:g}..{w_high:g}"
                )
        elif isinstance(given, CategoryField) and isinstance(wanted, CategoryField):
            if wanted.on_unseen == "other":
                continue  # any value: the challenger's "other" takes what it does not know
            if given.on_unseen == "other":
                problems.append(
                    f"field {name!r}: the served API accepts any value, the challenger only "
                    f"{list(wanted.values)}"
                )
                continue
            unknown = [v for v in given.values if v not in wanted.values]
            if unknown:
                problems.append(
                    f"field {name!r}: the served API accepts {unknown}, values the challenger "
                    "was not trained on (it refuses unseen values)"
                )
    return problems
