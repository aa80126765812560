"""Session-wide set-up: a private BENTOML_HOME and one small model trained once (per process:
under ``pytest -n N`` every xdist worker has its own home, model and session server), and the
order in which ``make test`` hands test files to its workers."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# BentoML reads BENTOML_HOME when it is imported: set it before any test module imports it,
# and drop the caller's DELIVERY_ETA_* settings so they cannot leak into the tests.
_BENTOML_HOME = tempfile.mkdtemp(prefix="delivery-eta-tests-bentoml-")
os.environ["BENTOML_HOME"] = _BENTOML_HOME
for _name in [n for n in os.environ if n.startswith("DELIVERY_ETA_")]:
    del os.environ[_name]
# Under xdist the parallelism is the workers': an OpenMP pool per training (scikit-learn's
# default, one thread per core) in each of them oversubscribes the cores, and OpenMP's
# spin-waiting threads then burn the CPU the other workers need. The servers are unaffected
# (they size their native pools themselves, serving/settings.py); an explicit value is kept.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402

from tests.harness.local_server import LocalServer, local_server  # noqa: E402
from tests.harness.redis_server import RedisServer  # noqa: E402

TIMING_SENSITIVE = (
    "tests/service/test_overload.py",
    "tests/reliability/test_shutdown_under_load.py",
    "tests/reliability/test_worker_respawn.py",
)
"""Files whose assertions are about time under load (a flood's /livez probe within 5 s, draining
under load, respawn): under ``make test`` they are one unit of work, run one after another on one
worker, so two floods never overlap."""

SLOWEST_FIRST = (
    *TIMING_SENSITIVE,
    "tests/service/test_trained_on_file.py",
    "tests/models/promotion/test_contract_gate.py",
    "tests/test_train.py",
    "tests/service/test_retrain_loop.py",
    "tests/service/test_retrain_batches.py",
    "tests/service/test_first_promotion.py",
    "tests/reliability/test_fuzz.py",
    "tests/service/test_redis_backend.py",
    "tests/reliability/test_store_outage.py",
    "tests/reliability/test_prediction_log_limits.py",
    "tests/service/test_shadow.py",
    "tests/service/test_startup.py",
    "tests/models/promotion/test_promotion.py",
    "tests/models/promotion/test_absolute_criteria.py",
    "tests/service/test_instance_isolation.py",
    "tests/service/test_model_selection.py",
    "tests/service/test_docs_page.py",
    "tests/loadtest/test_locust_mix.py",
    "tests/service/test_observability.py",
    "tests/monitoring/test_rules.py",
)
"""The test files that take longest (they train models, start servers, run the user's commands),
longest first: under ``make test`` the workers take them before the quick files, so the run does
not end waiting on one slow file that started last."""


def _test_file(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under xdist, the slowest files first (the scheduler hands out work units in collection
    order). A run without workers keeps pytest's order."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return
    rank = {path: position for position, path in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(_test_file(item.nodeid), len(rank)))


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist loadfile`` with one change: the timing-sensitive files are one unit, not three.

    Units are still whole files, so a module's fixtures (its server, its private store, the models
    it trains) are set up on one worker only. (``--dist loadgroup`` would say the same with
    ``xdist_group`` marks, but pytest-xdist 3.8 groups by rewriting ``item._nodeid``, which
    pytest 9 no longer reads: every test became a unit of its own.)
    """
    if config.getoption("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class FileOrTimingUnits(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = _test_file(nodeid)
            return "timing-sensitive" if path in TIMING_SENSITIVE else path

    # The order of the units is SLOWEST_FIRST's, not xdist's default (the most tests first).
    config.option.loadscopereorder = False
    return FileOrTimingUnits(config, log)


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
