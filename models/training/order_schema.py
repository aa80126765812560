"""The columns an order history must have for a feature contract, and what each must hold,
in words: shown in the reader's error messages and recorded with the model.
"""

from __future__ import annotations

from typing import Any

from models.contract import (
    ENTITY_ID_MAX_LENGTH,
    BooleanField,
    CategoryField,
    EntityField,
    FeatureContract,
    IntegerField,
)

SHOWN_ALLOWED_VALUES = 30
"""A category's allowed values listed in a problem (the rest are counted)."""


def order_history_schema(contract: FeatureContract) -> dict[str, str]:
    """The columns a training file of ``contract`` must have, in order (the timestamp, every
    field, the target), and what each must hold. Shown in error messages and recorded with
    the model."""
    schema = {contract.timestamp.column: contract.timestamp.description}
    for name, spec in contract.fields.items():
        schema[name] = _describe(spec)
    target = contract.target
    schema[target.column] = (
        f"{target.description}, number {number_text(target.minimum)}-{number_text(target.maximum)}"
    )
    return schema


def number_text(value: float) -> str:
    """``50.0`` -> ``50``, ``0.1`` -> ``0.1``: bounds as a person writes them."""
    value = float(value)
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)


def truthy_range(spec: Any) -> bool:
    """True for fields whose file values may be written true/false: booleans, and integers
    bounded within 0..1 (a 0/1 flag declared as an integer)."""
    if isinstance(spec, BooleanField):
        return True
    return isinstance(spec, IntegerField) and spec.minimum >= 0 and spec.maximum <= 1


def allowed_values_text(spec: CategoryField) -> str:
    shown = ", ".join(str(v) for v in spec.values[:SHOWN_ALLOWED_VALUES])
    more = len(spec.values) - SHOWN_ALLOWED_VALUES
    return shown + (f", ... ({more} more)" if more > 0 else "")


def _describe(spec: Any) -> str:
    if isinstance(spec, EntityField):
        what = f"id, 1-{ENTITY_ID_MAX_LENGTH} characters of A-Z a-z 0-9 _ . : -"
    elif isinstance(spec, CategoryField):
        what = f"one of: {allowed_values_text(spec)}"
        if spec.on_unseen == "other":
            what += f" (any other value counts as {spec.other_value!r})"
    elif truthy_range(spec):
        what = "0 or 1 (true/false accepted)"
    elif isinstance(spec, IntegerField):
        what = f"whole number, {number_text(spec.minimum)}-{number_text(spec.maximum)}"
    else:
        what = f"number, {number_text(spec.minimum)}-{number_text(spec.maximum)}"
    if spec.description:
        what = f"{spec.description}: {what}"
    if not spec.required:
        default = getattr(spec, "default", None)
        what += f"; optional (absent or empty: {default!r})"
    return what
