"""The benchmark's columnar cells (issue 26): bodies written from the served contract, the v2
cells dropped when the service has no v2 route, the larger call limits only the service gets,
and the report -- medians per cell, rows/s over the ceiling of the same rounds, the goals."""

from __future__ import annotations

import json
from pathlib import Path

from loadtest.bench.columnar import (
    KINDS,
    V1_BATCH,
    V2_BINARY,
    V2_JSON,
    ColumnarPlan,
    _path,
    columnar_report,
    prepare,
    served_model_name,
    service_env,
)
from loadtest.bench.common import SERVICE, TUTORIAL, Target
from loadtest.bench.runs import Run
from loadtest.bench.targets import launch
from loadtest.bench.workers import TargetSpec
from loadtest.bench.wrk import WrkResult
from loadtest.v2_bodies import read_binary_records
from tests.harness.contract_stub import contract_stub
from tests.models.contract.mixed_contract import MIXED


def _plan(tmp_path: Path, rows: tuple[int, ...] = (1000, 10000)) -> ColumnarPlan:
    return ColumnarPlan(
        out=tmp_path, rows=rows, connections=4, duration=1, rounds=2, threads=1, ceiling_s=0.1
    )


def test_the_service_alone_gets_the_larger_call_limits(tmp_path: Path) -> None:
    assert service_env([100, 1000]) == {}
    extra = service_env([1000, 10000])
    assert extra["DELIVERY_ETA_MAX_BATCH_ROWS"] == "10000"
    assert int(extra["DELIVERY_ETA_MAX_BODY_BYTES"]) >= 4 * 1_048_576
    service = launch(TargetSpec(SERVICE, SERVICE, 2), 4004, tmp_path, None, {}, extra)
    assert service.env["DELIVERY_ETA_MAX_BATCH_ROWS"] == "10000"
    tutorial = launch(TargetSpec(TUTORIAL, TUTORIAL, 2), 4005, tmp_path, "m:1", {}, extra)
    assert "DELIVERY_ETA_MAX_BATCH_ROWS" not in tutorial.env


def test_bodies_follow_the_served_contract_and_v2_cells_need_the_route(tmp_path: Path) -> None:
    assert served_model_name("delivery_eta:abc123") == "delivery_eta"
    with contract_stub(MIXED) as stub:  # no /v2 routes: 404
        target = Target(SERVICE, SERVICE, 2, stub.url, 0)
        plan = prepare(_plan(tmp_path, (20, 30)), target, "mixed_model:v1")
    assert plan.kinds == (V1_BATCH,)
    assert plan.model_name == "mixed_model" and plan.model_tag == "mixed_model:v1"
    assert set(plan.bodies) == {(kind, rows) for kind in KINDS for rows in (20, 30)}
    assert len(read_binary_records(plan.bodies[(V2_BINARY, 30)])) == 8
    assert len(plan.bodies[(V2_JSON, 20)].read_text().splitlines()) == 8


def _run(kind: str, rows: int, rnd: int, rps: float, p99: float = 50.0) -> Run:
    result = WrkResult(int(rps * 10), rps, 20.0, p99, 0, 0)
    return Run(kind, SERVICE, 4, rows, rnd, 10.0, result, 0.5, 18.0, 19.0, server=SERVICE)


def test_the_report_compares_each_cell_with_the_ceiling_of_its_rounds(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    runs = [
        _run(V1_BATCH, 10000, 1, 10),
        _run(V2_JSON, 10000, 1, 16),
        _run(V2_BINARY, 10000, 1, 30),  # 300k rows/s, ceiling 400k: 0.75
        _run(V2_BINARY, 10000, 2, 27),  # 270k, ceiling 300k: 0.90
        _run(V2_JSON, 1000, 1, 100),
    ]
    lines, verdicts = columnar_report(runs, [400_000.0, 300_000.0], plan)
    text = "\n".join(lines)
    assert "| v2 infer, binary tensors | 10000 |" in text
    assert "285,000" in text  # median of 300k and 270k rows/s
    assert "0.81x" in text  # 285k over the median ceiling, 350k
    assert "median **350,000 rows/s**" in text
    assert any(v.startswith("MET") and "250,000 rows/s: 285,000" in v for v in verdicts)
    # The ratio is the median of per-round ratios (0.75 and 0.90), not of the medians.
    assert any(v.startswith("MET") and "0.82x" in v for v in verdicts)
    assert any(v.startswith("MET") and "p99 <= 100 ms: 50.0" in v for v in verdicts)
    assert any(v.startswith("MET") and "v2 JSON >= 150,000 rows/s" in v for v in verdicts)


def test_no_v2_goals_without_v2_cells(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    plan = ColumnarPlan(**{**plan.__dict__, "kinds": (V1_BATCH,)})
    lines, verdicts = columnar_report([_run(V1_BATCH, 1000, 1, 50)], [1.0], plan)
    assert verdicts == []
    assert any("`/v1/predict/batch`" in line for line in lines)


def test_one_row_cells_compare_v2_with_the_single_route(tmp_path: Path) -> None:
    with contract_stub(MIXED) as stub:
        target = Target(SERVICE, SERVICE, 2, stub.url, 0)
        plan = prepare(_plan(tmp_path, (1, 20)), target, "mixed_model:v1")
    # /v1/predict takes the order itself; larger calls keep the batch route's body.
    single = [json.loads(line) for line in plan.bodies[(V1_BATCH, 1)].read_text().splitlines()]
    assert len(single) == 8 and all("orders" not in order for order in single)
    assert set(single[0]) <= set(MIXED.fields) | set(MIXED.entity_features)
    batch = json.loads(plan.bodies[(V1_BATCH, 20)].read_text().splitlines()[0])
    assert len(batch["orders"]) == 20
    assert _path(plan, V1_BATCH, 1) == "/v1/predict"
    assert _path(plan, V1_BATCH, 20) == "/v1/predict/batch"

    def one_row(kind: str, server_cpu_s: float) -> Run:
        result = WrkResult(1000, 100.0, 20.0, 50.0, 0, 0)
        return Run(kind, SERVICE, 4, 1, 1, 10.0, result, 0.5, server_cpu_s, 19.0, server=SERVICE)

    plan = ColumnarPlan(**{**plan.__dict__, "kinds": KINDS, "rows": (1,)})
    for v2_cpu, verdict in ((0.5, "MET"), (0.9, "MISSED")):
        runs = [one_row(V1_BATCH, 0.6), one_row(V2_JSON, v2_cpu), one_row(V2_BINARY, 0.5)]
        lines, verdicts = columnar_report(runs, [1.0], plan)
        assert any("`/v1/predict` (one order)" in line for line in lines)
        (cost,) = [v for v in verdicts if "one-row v2" in v]
        assert cost.startswith(verdict), cost
