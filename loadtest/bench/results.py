"""What a benchmark run leaves behind: every run in the order it ran, the report's header line,
and the files in the results folder (``bench.md``, ``runs.json``)."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

from loadtest.bench.cells import format_value
from loadtest.bench.common import CORES
from loadtest.bench.runs import Run


def runs_table(runs: Sequence[Run]) -> str:
    """Every run in the order it ran (for the noise: compare rounds of the same cell)."""
    lines = [
        "| # | round | kind | target | conns | rows | req/s | p50 | p99 | non-2xx | "
        "CPU-s / 1k req | RSS / worker (MiB) | mean batch | busiest / 2nd process (cores) "
        "| wrk CPU | server CPU | other CPU |",
        "|--:|--:|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for i, r in enumerate(runs, 1):
        mean_batch = r.extra.get("mean_requests_per_batch", float("nan"))
        lines.append(
            f"| {i} | {r.round} | {r.kind} | {r.target} | {r.connections} | {r.rows} "
            f"| {r.result.rps:.0f} | {format_value(r.result.p50_ms, 'ms')} | {format_value(r.result.p99_ms, 'ms')} "
            f"| {r.result.non_2xx + r.result.socket_errors} "
            f"| {format_value(r.cpu_s_per_1k_requests, 'cpu')} | {format_value(r.rss_worker_mib, 'int')} "
            f"| {'—' if mean_batch != mean_batch else f'{mean_batch:.1f}'} "
            f"| {r.extra.get('busiest_process_core', 0):.2f} / {r.extra.get('second_process_core', 0):.2f} "
            f"| {r.share(r.wrk_cpu_s):.0%} | {r.share(r.server_cpu_s):.0%} "
            f"| {r.share(r.other_cpu_s):.0%} |"
        )
    return "\n".join(lines)


def bench_header(
    tag: str, workers: str, rounds: int, duration: int, threads: int, code: str
) -> str:
    """The report's first line: when, where, what ran and how busy the machine was after."""
    load = os.getloadavg()
    return (
        f"Benchmark {datetime.now().isoformat(timespec='seconds')} on {CORES} cores "
        f"({os.uname().nodename}); service model {tag}; workers: {workers}; "
        f"median of {rounds} rounds x {duration} s per cell, alternating order; "
        f"wrk -t{threads}, Lua bodies; load average after: {load[0]:.2f}; "
        f"code: {code}"
    )


def report_text(table: str, verdicts: Sequence[str], runs: Sequence[Run]) -> str:
    """The tables, the targets and every run: what is printed and written to bench.md."""
    return "\n".join(
        [
            table,
            "",
            "Targets (issue 5; columnar cells: issue 26):",
            *[f"  {v}" for v in verdicts],
            "",
            "All runs:",
            "",
            runs_table(runs),
        ]
    )


def _json_safe(value: Any) -> Any:
    """NaN (a cell nothing measured) as null: runs.json stays strict JSON."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def run_record(run: Run) -> dict[str, Any]:
    """One run as runs.json stores it: its fields plus the derived rates."""
    return _json_safe(
        {
            **asdict(run),
            "rows_per_s": run.rows_per_s,
            "cpu_s_per_1k_requests": run.cpu_s_per_1k_requests,
            "cpu_s_per_1k_rows": run.cpu_s_per_1k_rows,
        }
    )


def write_results(out: Path, report: str, runs: Sequence[Run]) -> None:
    """``bench.md`` (the report) and ``runs.json`` (every run) in ``out``."""
    (out / "bench.md").write_text(report + "\n")
    (out / "runs.json").write_text(
        json.dumps([run_record(r) for r in runs], indent=1, default=str, allow_nan=False)
    )
