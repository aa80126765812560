"""The protocol's inputs of the served model: one per request field, derived from the request
model's JSON schema (``serving.schema.order_model`` of the served contract) -- its kinds,
bounds, allowed values, patterns, required and optional fields. Nothing here names a field:
another contract gives other inputs.

Per JSON type: ``string`` -> ``BYTES`` (ids, text categories), ``number`` -> ``FP64``,
``integer`` -> ``INT64``, ``boolean`` (or the 0/1 union) -> ``BOOL``; a field that is either an
integer or text (a category of mixed values) -> ``BYTES`` whose all-digit elements are the
integers. A nullable field (an entity aggregate's override) is ``FP64`` with NaN meaning "not
given" for that row. Every input's shape is ``[-1]``: one element per order.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["number", "integer", "boolean", "string", "integer_or_string"]
DATATYPE_OF_KIND: dict[Kind, str] = {
    "number": "FP64",
    "integer": "INT64",
    "boolean": "BOOL",
    "string": "BYTES",
    "integer_or_string": "BYTES",
}


@dataclass(frozen=True)
class InputSpec:
    """One input tensor: the request field it carries and that field's rules."""

    name: str
    kind: Kind
    required: bool
    default: Any = None
    """The value of every row when an optional input is left out (None: not given)."""
    nullable: bool = False
    """NaN elements mean "not given" (only ``FP64`` inputs)."""
    minimum: float = -math.inf
    maximum: float = math.inf
    exclusive_minimum: bool = False
    exclusive_maximum: bool = False
    allowed: tuple[Any, ...] | None = None
    """The only values taken (an enum), or None."""
    min_length: int = 0
    max_length: int | None = None
    pattern: re.Pattern[str] | None = None
    description: str = ""

    @property
    def datatype(self) -> str:
        """The protocol datatype clients send this input as."""
        return DATATYPE_OF_KIND[self.kind]

    def rules(self) -> dict[str, Any]:
        """The rules as the model metadata's input ``parameters`` publish them."""
        rules: dict[str, Any] = {"required": self.required}
        if self.nullable:
            rules["nan_means_not_given"] = True
        if self.default is not None:
            rules["default"] = self.default
        if self.minimum != -math.inf:
            rules["exclusive_minimum" if self.exclusive_minimum else "minimum"] = self.minimum
        if self.maximum != math.inf:
            rules["exclusive_maximum" if self.exclusive_maximum else "maximum"] = self.maximum
        if self.allowed is not None:
            rules["allowed"] = list(self.allowed)
        if self.max_length is not None:
            rules["max_length"] = self.max_length
        if self.min_length:
            rules["min_length"] = self.min_length
        if self.pattern is not None:
            rules["pattern"] = self.pattern.pattern
        if self.description:
            rules["description"] = self.description
        return rules


def input_specs(request_schema: Mapping[str, Any]) -> tuple[InputSpec, ...]:
    """One :class:`InputSpec` per property of a request model's JSON schema, in its order.

    Raises ``ValueError`` for a property whose type the protocol mapping does not know (a
    request model this module was not written for)."""
    required = set(request_schema.get("required", ()))
    return tuple(
        _spec(name, prop, name in required)
        for name, prop in request_schema.get("properties", {}).items()
    )


def _spec(name: str, prop: Mapping[str, Any], required: bool) -> InputSpec:
    members = [prop]
    nullable = False
    if "anyOf" in prop:
        members = [m for m in prop["anyOf"] if m.get("type") != "null"]
        nullable = len(members) < len(prop["anyOf"])
    types = {kind for m in members for kind in ([m["type"]] if "type" in m else _enum_types(m))}
    common: dict[str, Any] = {
        "name": name,
        "required": required,
        "default": prop.get("default"),
        "description": prop.get("description", ""),
    }
    if types == {"boolean"} or (types == {"boolean", "integer"} and _is_zero_one(members)):
        return InputSpec(kind="boolean", **common)
    if types == {"integer", "string"}:
        text = [m for m in members if m.get("type") == "string"]
        enum = [v for m in members for v in m.get("enum", ())]
        return InputSpec(
            kind="integer_or_string",
            max_length=text[0].get("maxLength") if text else None,
            allowed=tuple(enum) if enum and not text else None,
            **common,
        )
    if len(members) != 1 or types - {"number", "integer", "string"}:
        raise ValueError(f"request field {name!r}: no protocol datatype for schema {dict(prop)}")
    (rules,) = members
    kind: Kind = types.pop()  # type: ignore[assignment]
    if nullable and kind != "number":
        raise ValueError(f"request field {name!r}: only numbers may be nullable")
    bounds = _bounds(rules)
    pattern = rules.get("pattern")
    return InputSpec(
        kind=kind,
        nullable=nullable,
        allowed=tuple(rules["enum"]) if "enum" in rules else None,
        min_length=rules.get("minLength", 0),
        max_length=rules.get("maxLength"),
        pattern=re.compile(pattern) if pattern else None,
        **bounds,
        **common,
    )


def _enum_types(rules: Mapping[str, Any]) -> set[str]:
    """The JSON types of an untyped enum (a choice of mixed values has no ``type``)."""
    names = {int: "integer", str: "string", float: "number", bool: "boolean"}
    return {names.get(type(v), "unknown") for v in rules.get("enum", ())} or {"unknown"}


def _is_zero_one(members: list[Mapping[str, Any]]) -> bool:
    return all(m["type"] == "boolean" or sorted(m.get("enum", ())) == [0, 1] for m in members)


def _bounds(rules: Mapping[str, Any]) -> dict[str, Any]:
    bounds: dict[str, Any] = {}
    if "exclusiveMinimum" in rules:
        bounds |= {"minimum": rules["exclusiveMinimum"], "exclusive_minimum": True}
    elif "minimum" in rules:
        bounds["minimum"] = rules["minimum"]
    if "exclusiveMaximum" in rules:
        bounds |= {"maximum": rules["exclusiveMaximum"], "exclusive_maximum": True}
    elif "maximum" in rules:
        bounds["maximum"] = rules["maximum"]
    return bounds
