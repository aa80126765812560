"""The columnar cells (issue 26): the service's ``/v1/predict/batch``, Open Inference Protocol v2
with JSON tensors and v2 with binary tensors, on the same orders, at 1,000- and 10,000-row calls
from 4 concurrent callers; and the model-only ceiling measured in the same run, between them.

Each round runs every (rows, kind) cell once and the ceiling once, the order reversed every
other round, so the ratio "v2 binary ÷ ceiling" compares figures taken side by side on a
machine whose load drifts. The ceiling is ``loadtest.runtime_bench.model_ceiling``: the served
compiled library alone, two processes (one per core, as the service's workers), 10,000-row
calls of the very rows the v2 binary cells send (``loadtest.bench.model_rows``: trees cost by the
depth a row walks, and the model's holdout rows walk ~10 % less deep; the ceiling on those is
printed beside it once a run). The bodies are written from the served contract (``loadtest.v2_bodies``); the v2 route is
``/v2/models/<the served model's name>/infer`` and its cells are skipped, with a note, when the
service does not answer ``/v2/models/<name>/ready``.
"""

from __future__ import annotations

import dataclasses
import json
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from loadtest.bench.cells import (
    BATCH_COLUMNS,
    format_ratio,
    format_value,
    median,
    p99_ms,
    rows_per_s,
)
from loadtest.bench.common import REPO_ROOT, Target
from loadtest.bench.measure import process_spread
from loadtest.bench.model_rows import write_cell_model_rows
from loadtest.bench.runs import Run
from loadtest.bench.wrk import parse_wrk, run_wrk
from loadtest.runtime_bench import model_ceiling
from loadtest.v2_bodies import write_v2_bodies
from models.served_contract import fetch_contract, load_ids

V1_BATCH, V2_JSON, V2_BINARY = "v1-batch", "v2-json", "v2-binary"
KINDS = (V1_BATCH, V2_JSON, V2_BINARY)
TITLES = {
    V1_BATCH: "`/v1/predict/batch` (JSON orders)",
    V2_JSON: "v2 infer, JSON tensors",
    V2_BINARY: "v2 infer, binary tensors",
}
JSON_SCRIPT = REPO_ROOT / "loadtest" / "bench.lua"
BINARY_SCRIPT = REPO_ROOT / "loadtest" / "v2_binary.lua"
BODIES_PER_SIZE = 8
"""Distinct calls per cell (a 10,000-row JSON call is ~1 MB)."""
MAX_BODY_BYTES = 16 * 1_048_576

# Goals of issue 26 (benchmark figures, printed as met / missed).
GOAL_BINARY_ROWS_S = 250_000
GOAL_BINARY_OF_CEILING = 0.8
GOAL_BINARY_P99_MS = 100.0
GOAL_JSON_ROWS_S = 150_000


def service_env(rows: Sequence[int]) -> dict[str, str]:
    """Settings the service needs to take the largest columnar call (none at 1,000 rows)."""
    largest = max(rows, default=0)
    if largest <= 1000:
        return {}
    return {
        "DELIVERY_ETA_MAX_BATCH_ROWS": str(largest),
        "DELIVERY_ETA_MAX_BODY_BYTES": str(MAX_BODY_BYTES),
    }


@dataclass(frozen=True)
class ColumnarPlan:
    """The columnar cells of a run, and where their bodies and wrk outputs go."""

    out: Path
    rows: Sequence[int]
    connections: int
    duration: int
    rounds: int
    threads: int
    ceiling_s: float
    model_tag: str = ""
    model_name: str = ""
    bodies: Mapping[tuple[str, int], Path] = dataclasses.field(default_factory=dict)
    kinds: Sequence[str] = KINDS
    ceiling_rows: Path | None = None
    """The model-input rows of the largest v2 binary cell (``.npy``): the ceiling's rows."""


def served_model_name(tag: str) -> str:
    """The model's name in the store (``delivery_eta`` of ``delivery_eta:abc123``): the v2
    protocol's model name."""
    return tag.split(":", 1)[0]


def v2_ready(url: str, name: str) -> bool:
    """Whether the service answers the v2 model-ready route for ``name`` (200)."""
    try:
        with urllib.request.urlopen(f"{url}/v2/models/{name}/ready", timeout=10) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def prepare(plan: ColumnarPlan, service: Target, tag: str) -> ColumnarPlan:
    """Write the bodies from the service's contract; drop the v2 cells (with a note) when the
    service has no v2 route."""
    contract = fetch_contract(service.url)
    known = load_ids(service.url, contract)
    name = served_model_name(tag)
    kinds = KINDS if v2_ready(service.url, name) else (V1_BATCH,)
    if kinds == (V1_BATCH,):
        print(f"  columnar: no /v2/models/{name}/ready on the service: v2 cells skipped")
    bodies: dict[tuple[str, int], Path] = {}
    for rows in plan.rows:
        files = write_v2_bodies(
            plan.out / "bodies",
            contract,
            count=BODIES_PER_SIZE,
            rows=rows,
            seed=rows,
            known_ids=known,
        )
        if rows == 1:
            _as_single_orders(files[0])
        bodies |= {(kind, rows): path for kind, path in zip(KINDS, files, strict=True)}
    ceiling_rows = None
    if V2_BINARY in kinds and plan.rows:
        largest = max(plan.rows)
        ceiling_rows = write_cell_model_rows(
            tag, bodies[(V2_BINARY, largest)], plan.out / "bodies" / f"model-rows-{largest}.npy"
        )
    return dataclasses.replace(
        plan,
        model_tag=tag,
        model_name=name,
        bodies=bodies,
        kinds=kinds,
        ceiling_rows=ceiling_rows,
    )


def _path(plan: ColumnarPlan, kind: str, rows: int) -> str:
    if kind == V1_BATCH:
        # One row: /v1's single route, what a one-order caller uses (goal: a one-row v2 call
        # costs no more than it).
        return "/v1/predict" if rows == 1 else "/v1/predict/batch"
    return f"/v2/models/{plan.model_name}/infer"


def _as_single_orders(path: Path) -> None:
    """Rewrite a ``v1-batch-1.jsonl`` file's ``{"orders": [order]}`` lines as the bare orders
    ``/v1/predict`` takes."""
    lines = path.read_bytes().splitlines()
    path.write_bytes(
        b"".join(
            json.dumps(json.loads(line)["orders"][0], separators=(",", ":")).encode() + b"\n"
            for line in lines
        )
    )


def run_cell(plan: ColumnarPlan, target: Target, kind: str, rows: int, rnd: int) -> Run:
    """One wrk run of a columnar cell; its output is kept in ``<out>/wrk/``."""
    measured = run_wrk(
        target,
        path=_path(plan, kind, rows),
        script=BINARY_SCRIPT if kind == V2_BINARY else JSON_SCRIPT,
        script_args=[str(plan.bodies[(kind, rows)])],
        connections=plan.connections,
        duration_s=plan.duration,
        threads=plan.threads,
    )
    run = Run(
        kind,
        target.name,
        plan.connections,
        rows,
        rnd,
        measured.wall_s,
        parse_wrk(measured.stdout),
        measured.wrk_cpu_s,
        measured.server_cpu_s,
        measured.machine_cpu_s,
        process_spread(measured),
        server=target.server,
        workers=target.workers,
        rss_worker_mib=measured.rss_worker_mib,
        rss_total_mib=measured.rss_total_mib,
    )
    (plan.out / "wrk").mkdir(exist_ok=True)
    name = f"{kind}-{target.name}-c{plan.connections}-r{rows}-{rnd}.txt"
    (plan.out / "wrk" / name).write_text(measured.stdout)
    return run


def measure_columnar(plan: ColumnarPlan, service: Target) -> tuple[list[Run], list[float]]:
    """Every round's cells and ceiling, alternating the order: (runs, ceiling rows/s per
    round)."""
    runs: list[Run] = []
    ceilings: list[float] = []
    pool = np.load(plan.ceiling_rows) if plan.ceiling_rows else None
    for rnd in range(1, plan.rounds + 1):
        steps: list[tuple[str, int]] = [("ceiling", 0)] + [
            (kind, rows) for rows in plan.rows for kind in plan.kinds
        ]
        for kind, rows in steps if rnd % 2 else steps[::-1]:
            if kind == "ceiling":
                ceilings.append(model_ceiling(plan.model_tag, seconds=plan.ceiling_s, pool=pool))
                print(f"  round {rnd} model-only ceiling {ceilings[-1]:10,.0f} rows/s", flush=True)
                continue
            run = run_cell(plan, service, kind, rows, rnd)
            runs.append(run)
            print(
                f"  round {rnd} {kind:9s} {rows:6d} rows/call {run.rows_per_s:10,.0f} rows/s "
                f"p50 {run.result.p50_ms:7.1f} ms  p99 {run.result.p99_ms:7.1f} ms  "
                f"non-2xx {run.result.non_2xx}  CPU-s/1k rows {run.cpu_s_per_1k_rows:.3f}",
                flush=True,
            )
    return runs, ceilings


def _select(runs: Sequence[Run], kind: str, rows: int) -> list[Run]:
    return [r for r in runs if r.kind == kind and r.rows == rows]


def _ratio_to_ceiling(runs: Sequence[Run], ceilings: Sequence[float], rows: int) -> float:
    """Median over rounds of (v2 binary rows/s ÷ that round's ceiling)."""
    by_round = {r.round: r.rows_per_s for r in _select(runs, V2_BINARY, rows)}
    return median(
        by_round[i + 1] / c for i, c in enumerate(ceilings) if i + 1 in by_round and c > 0
    )


def columnar_report(
    runs: Sequence[Run],
    ceilings: Sequence[float],
    plan: ColumnarPlan,
    holdout: float | None = None,
) -> tuple[list[str], list[str]]:
    """The columnar table (a row per cell, medians over rounds, rows/s ÷ the ceiling), the
    ceiling's line (and the ceiling on the holdout rows, when measured), and the issue's goals
    as met/missed lines."""
    ceiling = median(ceilings)
    headers = [c.header for c in BATCH_COLUMNS]
    lines = [
        "",
        f"| columnar cells @ {plan.connections} conns | rows/call | "
        + " | ".join(headers)
        + " | rows/s ÷ model-only ceiling |",
        "|---|--:|" + "--:|" * (len(headers) + 1),
    ]
    for rows in plan.rows:
        for kind in KINDS:
            cell = _select(runs, kind, rows)
            if not cell:
                continue
            values = [
                format_value(median(c.metric(r) for r in cell), c.unit) for c in BATCH_COLUMNS
            ]
            share = format_ratio(median(rows_per_s(r) for r in cell), ceiling)
            title = "`/v1/predict` (one order)" if kind == V1_BATCH and rows == 1 else TITLES[kind]
            lines.append(f"| {title} | {rows} | {' | '.join(values)} | {share} |")
    rows_file = f" --rows-file {plan.ceiling_rows}" if plan.ceiling_rows else ""
    whose = "the v2 binary cells' own rows" if plan.ceiling_rows else "the model's holdout rows"
    lines.append(
        f"\nModel-only ceiling (compiled library alone, 2 processes, 10,000-row calls of {whose}, "
        f"{len(ceilings)} rounds between the cells): median **{format_value(ceiling)} rows/s** "
        f"({', '.join(format_value(c) for c in ceilings)}); `python -m loadtest.runtime_bench "
        f"--ceiling --tag {plan.model_tag}{rows_file}`."
    )
    if holdout:
        binary = _select(runs, V2_BINARY, max(plan.rows))
        of_holdout = median(rows_per_s(r) for r in binary) / holdout if binary else 0.0
        lines.append(
            f"On the model's holdout rows instead (once, after the rounds): "
            f"{format_value(holdout)} rows/s; the v2 binary cell is {of_holdout:.2f}x of that."
        )
    return lines, _verdicts(runs, ceilings, plan)


def holdout_ceiling(plan: ColumnarPlan) -> float | None:
    """The ceiling on the model's holdout rows (the figure before the cells' own rows were
    used), once; None when the ceiling is on the holdout already."""
    if not plan.ceiling_rows:
        return None
    rate = model_ceiling(plan.model_tag, seconds=plan.ceiling_s)
    print(f"  model-only ceiling on the holdout rows {rate:10,.0f} rows/s", flush=True)
    return rate


def _verdicts(runs: Sequence[Run], ceilings: Sequence[float], plan: ColumnarPlan) -> list[str]:
    if V2_BINARY not in plan.kinds or not plan.rows:
        return []
    rows = max(plan.rows)
    binary = _select(runs, V2_BINARY, rows)
    rate, p99 = median(rows_per_s(r) for r in binary), median(p99_ms(r) for r in binary)
    share = _ratio_to_ceiling(runs, ceilings, rows)
    json_rate = max(median(rows_per_s(r) for r in _select(runs, V2_JSON, n)) for n in plan.rows)

    def verdict(met: bool) -> str:
        return "MET   " if met else "MISSED"

    single: list[str] = []
    if 1 in plan.rows:
        # CPU per request (server CPU-s per 1k rows at one row a call), v2 JSON vs /v1/predict.
        v1_cpu = median(r.cpu_s_per_1k_rows for r in _select(runs, V1_BATCH, 1))
        v2_cpu = median(r.cpu_s_per_1k_rows for r in _select(runs, V2_JSON, 1))
        single = [
            f"{verdict(v2_cpu <= v1_cpu)} (issue 26) a one-row v2 JSON call costs no more CPU "
            f"than /v1/predict: {v2_cpu:.3f} vs {v1_cpu:.3f} ms of CPU a request"
        ]
    # Listed after issue 5's targets in the report: each says it is issue 26's.
    return [
        *single,
        f"{verdict(rate >= GOAL_BINARY_ROWS_S)} (issue 26) v2 binary {rows}-row calls @ "
        f"{plan.connections} conns >= {GOAL_BINARY_ROWS_S:,} rows/s: {rate:,.0f}",
        f"{verdict(share >= GOAL_BINARY_OF_CEILING)} (issue 26) v2 binary >= {GOAL_BINARY_OF_CEILING}x "
        f"the model-only ceiling (median of per-round ratios): {share:.2f}x",
        f"{verdict(p99 <= GOAL_BINARY_P99_MS)} (issue 26) v2 binary p99 <= {GOAL_BINARY_P99_MS:.0f} ms: "
        f"{p99:.1f} ms",
        f"{verdict(json_rate >= GOAL_JSON_ROWS_S)} (issue 26) v2 JSON >= {GOAL_JSON_ROWS_S:,} rows/s "
        f"(best call size): {json_rate:,.0f}",
    ]


def write_columnar(out: Path, runs: Sequence[Run], ceilings: Sequence[float]) -> None:
    """The ceiling per round beside the runs (``columnar.json``)."""
    record = {
        "ceiling_rows_per_s": list(ceilings),
        "cells": [
            {"kind": r.kind, "rows": r.rows, "round": r.round, "rows_per_s": r.rows_per_s}
            for r in runs
        ],
    }
    (out / "columnar.json").write_text(json.dumps(record, indent=1))
