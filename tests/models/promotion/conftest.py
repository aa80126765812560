"""The promotion tests' model store: each test module gets a private one (a temporary
BENTOML_HOME's ``models/``, patched into BentoML's container for that module only) seeded with a
copy of the session's small model, so promotions never change what ``delivery_eta:latest`` or
the stages mean for the other tests."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from framework_internals import use_model_store
from models.store.artifact import MODEL_NAME
from models.store.stages import CANDIDATE
from models.training.config import TrainingConfig
from models.training.release import train_and_register


@pytest.fixture(scope="module")
def store_home(registered, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:  # type: ignore[no-untyped-def]
    """A private model store holding a copy of the session model (still stage=candidate)."""
    home = tmp_path_factory.mktemp("promotion-bentoml-home")
    version = registered.tag.split(":")[1]
    shutil.copytree(registered.path, home / "models" / MODEL_NAME / version)
    with use_model_store(home / "models"):
        yield home


@pytest.fixture(scope="module")
def base_tag(store_home: Path, registered) -> str:  # type: ignore[no-untyped-def]
    """The session model's tag, in the module's store."""
    return str(registered.tag)


@pytest.fixture(scope="module")
def fine_tag(store_home: Path) -> str:
    """A retrain on the same data with other hyper-parameters: as accurate, a little faster."""
    config = dataclasses.replace(TrainingConfig.small(), max_iter=100, learning_rate=0.12)
    return train_and_register(config, stage=CANDIDATE).tag
