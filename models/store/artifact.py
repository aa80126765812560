"""Register trained models in the BentoML model store and load them back, verified."""

from __future__ import annotations

import hashlib
import importlib
import json
import platform
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import bentoml
import joblib
import numpy as np
import pandas as pd
import sklearn

from models.compiled_build import build_library
from models.compiled_runtime import METADATA_KEY as COMPILED_LIBRARY_KEY
from models.contract import (
    ContractError,
    FeatureContract,
    contract_from_metadata,
    default_contract,
)
from models.contract.loading import contract_metadata
from models.features import EntityFeatures
from models.model import DeliveryTimeModel

MODEL_NAME = "delivery_eta"
MODEL_FILE = "model.joblib"
ENTITY_FILE = "entity_features.json"
ARTIFACT_FILES = (MODEL_FILE, ENTITY_FILE)


class ModelArtifactError(RuntimeError):
    """The model to serve is missing or does not match what this code expects."""


@dataclass(frozen=True)
class ModelArtifact:
    """A verified model from the store, ready to serve."""

    tag: str
    model: DeliveryTimeModel
    entities: EntityFeatures
    metadata: dict[str, Any]
    labels: dict[str, str]
    path: Path
    contract: FeatureContract
    """The feature contract the model was trained with: the API of the service serving it."""


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def library_versions() -> dict[str, str]:
    """Versions that must match between training and serving for the pickle to be trusted."""
    return {
        "python": platform.python_version(),
        "bentoml": bentoml.__version__,
        "scikit-learn": sklearn.__version__,
        "numpy": np.__version__,
        "pandas": pd.__version__,
    }


def register_model(
    model: DeliveryTimeModel,
    entities: EntityFeatures,
    contract: FeatureContract,
    metadata: dict[str, Any],
    labels: dict[str, str],
    extra_files: Callable[[str], dict[str, bytes]] | None = None,
    *,
    compile_library: bool = True,
) -> bentoml.Model:
    """Save ``model`` + its entity features as a new version of ``delivery_eta``.

    ``extra_files(tag)`` returns more files (model card, plots) to store beside the model.
    With ``compile_library`` the trees are also compiled to a shared library beside them
    (``models.compiled_build.build_library``; skipped with a warning when no C compiler is
    installed). The metadata records the feature contract, the feature order and the sha256
    of every artifact file and of the library, which :func:`load_artifact` checks before
    anything is served.
    """
    if tuple(model.feature_names) != contract.feature_names:
        raise ModelArtifactError(
            f"model features {list(model.feature_names)} are not the contract's "
            f"{list(contract.feature_names)}"
        )
    with bentoml.models.create(MODEL_NAME, labels=labels, metadata={}) as bento_model:
        root = Path(bento_model.path)
        joblib.dump(model, root / MODEL_FILE)
        compiled = build_library(model, root) if compile_library else None
        if compiled is not None:
            bento_model.info.metadata[COMPILED_LIBRARY_KEY] = compiled
        (root / ENTITY_FILE).write_text(json.dumps(entities.to_json_dict(), sort_keys=True))
        for name, content in (extra_files(str(bento_model.tag)) if extra_files else {}).items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_bytes(content)
        bento_model.info.metadata.update(
            {
                **metadata,
                **contract_metadata(contract),
                "feature_names": list(contract.feature_names),
                "artifact_sha256": {name: sha256_file(root / name) for name in ARTIFACT_FILES},
                "library_versions": library_versions(),  # type: ignore[dict-item]
                "registered_at": datetime.now(UTC).isoformat(timespec="seconds"),
            }
        )
    return bento_model


# Where classes pickled into older artifacts live now: models registered before the layout
# change name ``models.predictor.DeliveryTimeModel``; they must keep loading.
_MOVED_MODULES = {"models.predictor": "models.model"}


def _unpickle_model(path: Path, tag: str) -> object:
    """``joblib.load`` of a verified model file; a class this code no longer has is refused."""
    for old, new in _MOVED_MODULES.items():
        sys.modules.setdefault(old, importlib.import_module(new))
    try:
        return joblib.load(path)
    except (ImportError, AttributeError) as exc:
        raise ModelArtifactError(
            f"model {tag}: {MODEL_FILE} needs code this version does not have ({exc}); retrain it"
        ) from None


def load_artifact(tag: str) -> ModelArtifact:
    """Load ``tag`` from the local model store and verify it against this code.

    Raises :class:`ModelArtifactError` with a one-line reason when the model is missing, its
    files do not match their recorded checksums, its feature contract is invalid, or its
    feature list differs from its contract's.
    """
    try:
        stored = bentoml.models.get(tag)
    except bentoml.exceptions.NotFound:
        raise ModelArtifactError(
            f"model {tag!r} is not in the model store (BENTOML_HOME); run `make train`"
        ) from None
    except ValueError as exc:
        raise ModelArtifactError(f"invalid model tag {tag!r}: {exc}") from None

    resolved = str(stored.tag)
    metadata: dict[str, Any] = dict(stored.info.metadata)
    if stored.tag.name != MODEL_NAME:
        raise ModelArtifactError(f"model {resolved} is not a {MODEL_NAME} model")
    contract = _stored_contract(resolved, metadata)
    recorded_features = tuple(metadata.get("feature_names", ()))
    if recorded_features != contract.feature_names:
        raise ModelArtifactError(
            f"model {resolved} was trained on features {list(recorded_features)}, "
            f"its contract declares {list(contract.feature_names)}"
        )
    reference = metadata.get("reference_stats", {})
    needed = [*contract.feature_names, "predicted_delivery_time_min"]
    if not all({"inner_edges", "shares"} <= set(reference.get(name, {})) for name in needed):
        raise ModelArtifactError(
            f"model {resolved} has no drift reference statistics in this code's format; retrain it"
        )
    if "holdout_mae" not in metadata.get("metrics", {}):
        raise ModelArtifactError(f"model {resolved} has no holdout_mae in its metrics")
    root = Path(stored.path)
    checksums = metadata.get("artifact_sha256", {})
    for name in ARTIFACT_FILES:
        path = root / name
        if not path.is_file():
            raise ModelArtifactError(f"model {resolved} has no {name}")
        if checksums.get(name) != sha256_file(path):
            raise ModelArtifactError(f"model {resolved}: {name} does not match its recorded sha256")

    compiled = metadata.get(COMPILED_LIBRARY_KEY)
    if compiled is not None:
        # Native code loaded into the server: it must be exactly the file registration built.
        library = root / str(compiled.get("file", ""))
        if not library.is_file():
            raise ModelArtifactError(
                f"model {resolved} records a compiled library {compiled.get('file')!r} it does not have"
            )
        if compiled.get("sha256") != sha256_file(library):
            raise ModelArtifactError(
                f"model {resolved}: {compiled.get('file')} does not match its recorded sha256"
            )

    # Checksums passed, so the pickle is the one train.py wrote: safe to unpickle.
    model = _unpickle_model(root / MODEL_FILE, resolved)
    if (
        not isinstance(model, DeliveryTimeModel)
        or tuple(model.feature_names) != contract.feature_names
    ):
        raise ModelArtifactError(
            f"model {resolved}: {MODEL_FILE} is not a matching DeliveryTimeModel"
        )
    entities = EntityFeatures.from_json_dict(json.loads((root / ENTITY_FILE).read_text()))
    if set(entities.tables) != set(contract.entity_features):
        raise ModelArtifactError(
            f"model {resolved}: {ENTITY_FILE} holds {sorted(entities.tables)}, its contract "
            f"declares {sorted(contract.entity_features)}"
        )
    return ModelArtifact(
        tag=resolved,
        model=model,
        entities=entities,
        metadata=metadata,
        labels=dict(stored.info.labels),
        path=root,
        contract=contract,
    )


def _stored_contract(tag: str, metadata: dict[str, Any]) -> FeatureContract:
    """The model's contract; a model registered before contracts were stored was trained on
    the default contract's five fields (its feature list is then checked against them)."""
    try:
        contract = contract_from_metadata(metadata)
    except ContractError as exc:
        raise ModelArtifactError(f"model {tag}: {exc}") from None
    return contract if contract is not None else default_contract()
