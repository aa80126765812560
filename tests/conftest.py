"""Session-wide set-up: a private BENTOML_HOME and one small model trained once."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

# BentoML reads BENTOML_HOME when it is imported: set it before any test module imports it,
# and drop the caller's DELIVERY_ETA_* settings so they cannot leak into the tests.
_BENTOML_HOME = tempfile.mkdtemp(prefix="delivery-eta-tests-bentoml-")
os.environ["BENTOML_HOME"] = _BENTOML_HOME
for _name in [n for n in os.environ if n.startswith("DELIVERY_ETA_")]:
    del os.environ[_name]

import pytest  # noqa: E402

from tests.harness.local_server import LocalServer, local_server  # noqa: E402
from tests.harness.redis_server import RedisServer  # noqa: E402


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(_BENTOML_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def registered(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A small model trained once per session and registered in the test model store."""
    from models.training.config import TrainingConfig
    from models.training.release import train_and_register

    return train_and_register(
        TrainingConfig.small(), stage="candidate", card_dir=tmp_path_factory.mktemp("card")
    )


@pytest.fixture(scope="session")
def kitchen_model():  # type: ignore[no-untyped-def]
    """A model trained with a contract of its own (``tests/harness/contract_models.py``:
    categories, a 0/1 boolean, an optional field, another entity), registered once per session."""
    from tests.harness.contract_models import kitchen_contract, kitchen_orders, register

    return register(kitchen_contract(), kitchen_orders())


@pytest.fixture(scope="session")
def subset_model():  # type: ignore[no-untyped-def]
    """A challenger for ``kitchen_model``: trained on a subset of its fields, in another order,
    with wider bounds and one more category value, on the same orders."""
    from tests.harness.contract_models import kitchen_orders, register, subset_contract

    return register(subset_contract(), kitchen_orders())


@pytest.fixture(scope="session")
def server(registered, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:  # type: ignore[no-untyped-def]
    """The service with the session's model and the embedded feature store."""
    workdir = tmp_path_factory.mktemp("server")
    env = {
        "DELIVERY_ETA_MODEL_TAG": registered.tag,
        "DELIVERY_ETA_PREDICTION_LOG_PATH": str(workdir / "predictions.sqlite3"),
    }
    with local_server(workdir / "server.log", env=env) as running:
        yield running


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A fresh redis-server for one test."""
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()
