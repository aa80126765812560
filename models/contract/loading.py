"""Read a contract from YAML (errors name the line and the field) or from model metadata."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from models.contract.spec import FeatureContract

DEFAULT_CONTRACT_PATH = Path(__file__).with_name("default.yaml")
"""Today's five request fields; used when training without ``CONTRACT=``."""
METADATA_KEY = "feature_contract"
"""Model-metadata key of the contract a model was trained with."""
FIELD_ORDER_KEY = "feature_contract_field_order"
"""Model-metadata key of the contract's field order, kept apart from the mapping: the field
order is the model's input order, and a mapping's key order does not survive every YAML
writer (``yaml.safe_dump`` sorts keys by default)."""
MAX_CONTRACT_BYTES = 1 << 20


class ContractError(ValueError):
    """A contract that cannot be used; ``str()`` lists every problem, with its line."""


def load_contract(path: str | Path) -> FeatureContract:
    """Parse and validate the YAML contract at ``path``; every problem is reported at once,
    each as ``file:line: fields.x.minimum: message``."""
    source = Path(path)
    try:
        if source.stat().st_size > MAX_CONTRACT_BYTES:
            raise ContractError(f"{source}: larger than {MAX_CONTRACT_BYTES} bytes")
        text = source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ContractError(f"{source}: cannot read the contract: {exc}") from None
    return parse_contract(text, str(source))


def parse_contract(text: str, source: str = "<contract>") -> FeatureContract:
    """:func:`load_contract` of YAML text."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ContractError(f"{source}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ContractError(
            f"{source}: a contract is a mapping (version, target, timestamp, fields)"
        )
    try:
        return FeatureContract.model_validate(data)
    except ValidationError as exc:
        lines = []
        for error in exc.errors(include_url=False):
            location = _readable(error["loc"])
            line = _line_of(node, error["loc"])
            where = f"{source}:{line}" if line else source
            message = error["msg"].removeprefix("Value error, ")
            lines.append(f"{where}: {location or 'contract'}: {message}")
        raise ContractError("invalid feature contract:\n  " + "\n  ".join(lines)) from None


def contract_metadata(contract: FeatureContract) -> dict[str, Any]:
    """What a model's metadata records of its contract: the contract and its field order."""
    return {METADATA_KEY: contract.metadata(), FIELD_ORDER_KEY: list(contract.fields)}


def contract_from_metadata(metadata: Mapping[str, Any]) -> FeatureContract | None:
    """The contract stored in a model's metadata (fields in their recorded order); None for a
    model registered before contracts were stored (it was trained on the default contract's
    features)."""
    stored = metadata.get(METADATA_KEY)
    if stored is None:
        return None
    order = metadata.get(FIELD_ORDER_KEY)
    fields = stored.get("fields") if isinstance(stored, Mapping) else None
    if isinstance(order, list) and isinstance(fields, Mapping) and set(order) == set(fields):
        stored = {**stored, "fields": {name: fields[name] for name in order}}
    try:
        return FeatureContract.model_validate(stored)
    except ValidationError as exc:
        raise ContractError(f"stored feature contract is invalid: {exc}") from None


@cache
def default_contract() -> FeatureContract:
    """The contract in ``default.yaml``."""
    return load_contract(DEFAULT_CONTRACT_PATH)


def _readable(location: tuple[Any, ...]) -> str:
    # pydantic adds the union member's tag ("number") to the path: not a YAML key.
    parts = [
        str(p) for p in location if p not in {"number", "integer", "boolean", "category", "entity"}
    ]
    return ".".join(parts)


def _line_of(node: yaml.Node | None, location: tuple[Any, ...]) -> int | None:
    """1-based line of the YAML node at ``location`` (the deepest one that exists)."""
    line = None if node is None else node.start_mark.line + 1
    for part in location:
        if isinstance(node, yaml.MappingNode):
            match = next((v for k, v in node.value if k.value == str(part)), None)
            if match is None:
                continue  # a union tag, or a missing key: stay on the enclosing node
            node = match
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                break
            node = node.value[part]
        else:
            continue
        line = node.start_mark.line + 1
    return line
