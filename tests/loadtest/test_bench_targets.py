"""Which targets a benchmark run starts and how: worker-count specs, command lines, flags
(nothing is started)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from loadtest.bench.cli import parse_args
from loadtest.bench.common import (
    BENTOML_FLOOR,
    BENTOML_FLOOR_NO_TRACING,
    FASTAPI_FLOOR,
    LABELS,
    NO_BATCH,
    SERVICE,
    TUTORIAL,
    VARIANT,
)
from loadtest.bench.targets import SERVED_CONTRACT_FILE, launch, tutorial_model_path
from loadtest.bench.workers import TargetSpec, describe_workers, parse_workers, target_specs


@pytest.fixture(autouse=True)
def _no_bench_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Flags default from BENCH_* variables: the caller's must not leak in. ``--variant``
    renames the variant's label: restore it after each test."""
    for name in [n for n in os.environ if n.startswith("BENCH_")]:
        monkeypatch.delenv(name)
    monkeypatch.setitem(LABELS, VARIANT, LABELS[VARIANT])


def test_one_worker_count_for_every_server() -> None:
    specs = target_specs([SERVICE, TUTORIAL], parse_workers("2"))
    assert specs == [TargetSpec(SERVICE, SERVICE, 2), TargetSpec(TUTORIAL, TUTORIAL, 2)]


def test_several_counts_make_one_target_per_server_and_count() -> None:
    specs = target_specs([SERVICE, FASTAPI_FLOOR], parse_workers("3,1,2"))
    assert [s.name for s in specs] == [
        "service@w1",
        "service@w2",
        "service@w3",
        "fastapi-floor@w1",
        "fastapi-floor@w2",
        "fastapi-floor@w3",
    ]
    assert describe_workers(specs) == "service 1/2/3, fastapi-floor 1/2/3"


def test_a_server_can_have_its_own_counts() -> None:
    workers = parse_workers("2 tutorial=1,3 bentoml=1")  # "bentoml" is the service's old name
    specs = target_specs([SERVICE, TUTORIAL, BENTOML_FLOOR], workers)
    assert [(s.name, s.workers) for s in specs] == [
        (SERVICE, 1),
        ("tutorial@w1", 1),
        ("tutorial@w3", 3),
        (BENTOML_FLOOR, 2),
    ]


@pytest.mark.parametrize("spec", ["0", "two", "nginx=2", "tutorial="])
def test_bad_worker_specs_are_refused(spec: str) -> None:
    with pytest.raises(ValueError):
        parse_workers(spec)


def test_launch_of_each_server(tmp_path: Path) -> None:
    tutorial = launch(TargetSpec("tutorial@w3", TUTORIAL, 3), 4001, tmp_path, "m:1", {})
    assert "loadtest.tutorial_app:app" in tutorial.command
    assert tutorial.command[tutorial.command.index("--workers") + 1] == "3"
    assert {"--loop", "uvloop", "--http", "httptools"} <= set(tutorial.command)
    assert tutorial.env["TUTORIAL_MODEL_PATH"] == str(tutorial_model_path(tmp_path))

    floor = launch(TargetSpec(FASTAPI_FLOOR, FASTAPI_FLOOR, 2), 4002, tmp_path, "m:1", {})
    assert "loadtest.floors.fastapi_floor:app" in floor.command

    bento_floor = launch(TargetSpec(BENTOML_FLOOR, BENTOML_FLOOR, 2), 4003, tmp_path, "m:1", {})
    assert "loadtest.floors.bentoml_floor:BentoMLFloor" in bento_floor.command
    assert bento_floor.env["BENTOML_FLOOR_WORKERS"] == "2"
    assert bento_floor.env["BENTOML_HOME"] == str(tmp_path / "home-bentoml-floor")
    assert "BENTOML_FLOOR_TRACING" not in bento_floor.env  # BentoML's default: tracing on
    quiet = TargetSpec(BENTOML_FLOOR_NO_TRACING, BENTOML_FLOOR_NO_TRACING, 2)
    assert launch(quiet, 4006, tmp_path, "m:1", {}).env["BENTOML_FLOOR_TRACING"] == "off"

    service = launch(TargetSpec(SERVICE, SERVICE, 2), 4004, tmp_path, None, {})
    assert "service:DeliveryETA" in service.command
    assert service.env["DELIVERY_ETA_WORKERS"] == "2"
    assert "DELIVERY_ETA_MODEL_TAG" not in service.env  # the first service picks the model
    # The service runs as shipped: its log level is not turned down for the benchmark.
    assert "DELIVERY_ETA_LOG_LEVEL" not in service.env

    off = launch(TargetSpec(NO_BATCH, NO_BATCH, 2), 4005, tmp_path, "m:1", {})
    assert off.env["DELIVERY_ETA_MAX_BATCH_SIZE"] == "1"
    assert off.env["DELIVERY_ETA_MODEL_TAG"] == "m:1"
    assert off.env["BENTOML_HOME"] != service.env["BENTOML_HOME"]
    assert "FLOOR_CONTRACT" not in floor.env  # no service ran yet: the default contract


def test_the_floors_validate_the_contract_the_service_serves(tmp_path: Path) -> None:
    (tmp_path / SERVED_CONTRACT_FILE).write_text("{}")  # written once the service runs
    served = str(tmp_path / SERVED_CONTRACT_FILE)
    for server in (FASTAPI_FLOOR, BENTOML_FLOOR, BENTOML_FLOOR_NO_TRACING):
        assert (
            launch(TargetSpec(server, server, 1), 4010, tmp_path, "m:1", {}).env["FLOOR_CONTRACT"]
            == served
        )
    for server in (TUTORIAL, SERVICE):  # the tutorial is the default contract's, by hand
        assert (
            "FLOOR_CONTRACT"
            not in launch(TargetSpec(server, server, 1), 4011, tmp_path, "m:1", {}).env
        )


def test_default_targets_and_baseline() -> None:
    args = parse_args([])
    assert args.servers == [
        SERVICE,
        TUTORIAL,
        FASTAPI_FLOOR,
        BENTOML_FLOOR,
        BENTOML_FLOOR_NO_TRACING,
    ]
    assert args.baseline == SERVICE


def test_variant_and_worker_counts_from_flags() -> None:
    args = parse_args(
        ["--targets", "bentoml,tutorial", "--workers", "1,2", "--variant", "DELIVERY_ETA_X=1"]
    )
    assert [s.name for s in args.specs] == [
        "service@w1",
        "service@w2",
        "tutorial@w1",
        "tutorial@w2",
        "variant@w1",
        "variant@w2",
    ]
    assert args.variant_env == {"DELIVERY_ETA_X": "1"}
    assert args.baseline == "service@w1"


@pytest.mark.parametrize(
    "argv",
    [
        ["--targets", "tutorial"],  # the service is what is compared
        ["--targets", "service,reference"],  # the old straw man is gone
        ["--targets", "service,variant"],  # the variant comes from --variant
        ["--baseline", "nope"],
        ["--workers", "0"],
    ],
)
def test_bad_flags_are_refused(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args(argv)
