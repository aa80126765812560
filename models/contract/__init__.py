"""The feature contract: the request fields and how each becomes a model input, declared once
(``spec``), read from YAML or a model's metadata (``loading``), drafted from a user's order
history (``draft``)."""

from models.contract.loading import (
    DEFAULT_CONTRACT_PATH,
    METADATA_KEY,
    ContractError,
    contract_from_metadata,
    default_contract,
    load_contract,
    parse_contract,
)
from models.contract.spec import (
    ENTITY_ID_MAX_LENGTH,
    ENTITY_ID_PATTERN,
    BooleanField,
    CategoryField,
    CohortSpec,
    EntityField,
    FeatureContract,
    IntegerField,
    NumberField,
)

__all__ = [
    "DEFAULT_CONTRACT_PATH",
    "ENTITY_ID_MAX_LENGTH",
    "ENTITY_ID_PATTERN",
    "METADATA_KEY",
    "BooleanField",
    "CategoryField",
    "CohortSpec",
    "ContractError",
    "EntityField",
    "FeatureContract",
    "IntegerField",
    "NumberField",
    "contract_from_metadata",
    "default_contract",
    "load_contract",
    "parse_contract",
]
