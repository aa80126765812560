"""Which feature contract a logged block was made with, and which contract an export uses.

Each block is checked against the contract of the model that made it (read from the model
store once per version); the export's columns come from the served model's contract unless
one is given.
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import ValidationError

from models.contract import (
    CategoryField,
    ContractError,
    FeatureContract,
    contract_from_metadata,
    default_contract,
)

ModelContracts = Callable[[str], FeatureContract | None]
"""Model version -> the contract it was trained with (None: not in this machine's store)."""


def inputs_signature(contract: FeatureContract) -> tuple[object, ...]:
    """What decides how a logged row decodes: the model inputs, each direct field's kind (and
    a category's levels), the entity fields. Two contracts with equal signatures log rows the
    same way (their bounds or descriptions may differ)."""
    direct = tuple(
        (name, spec.kind, spec.levels() if isinstance(spec, CategoryField) else None)
        for name, spec in contract.fields.items()
        if spec.kind != "entity"
    )
    return (contract.feature_names, contract.entity_fields, direct)


def store_contracts() -> ModelContracts:
    """Model version -> its stored contract, read from the model store once per version."""
    cache: dict[str, FeatureContract | None] = {}

    def lookup(version: str) -> FeatureContract | None:
        if version not in cache:
            cache[version] = _stored_contract(version)
        return cache[version]

    return lookup


def _stored_contract(version: str) -> FeatureContract | None:
    import bentoml  # the model store: only when the export runs

    try:
        stored = bentoml.models.get(version)
    except (bentoml.exceptions.BentoMLException, ValueError):
        return None
    try:
        return contract_from_metadata(stored.info.metadata) or default_contract()
    except ContractError:
        return None


def served_contract(contracts: ModelContracts) -> tuple[FeatureContract, str]:
    """The contract of the model the service serves (its settings, else the production model),
    and where it came from; the default contract when that model is not in the store."""
    from models.settings import ModelSettings
    from models.store.stages import LifecycleError, resolve_serving_tag

    try:
        tag = resolve_serving_tag(ModelSettings().model_tag)
    except (LifecycleError, ValidationError):
        tag = None
    found = None if tag is None else contracts(tag)
    if found is None:
        return default_contract(), "default contract (no served model in the model store)"
    return found, f"contract of the served model {tag}"
