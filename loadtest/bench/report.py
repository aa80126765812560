"""The report: per cell, one Markdown table with a row per target (medians over the rounds and
the ratios "baseline ÷ it"), the issue's targets as met/missed lines, and every run in the
order it ran."""

from __future__ import annotations

import json
import math
import os
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from loadtest.bench.common import COLD_CONNECTIONS, CORES, LABELS, SERVICE, TUTORIAL
from loadtest.bench.runs import Run

# Targets of issue 5 (benchmark figures, printed as met / missed).
TARGET_RATIO_64 = 2.0
TARGET_P99_64_MS = 50.0
TARGET_BATCH_ROWS_S = 100_000

Metric = Callable[[Run], float]
Idle = dict[str, dict[str, float]]


def median(values: Sequence[float]) -> float:
    """Median of the values that are numbers (NaN for none)."""
    numbers = [v for v in values if v == v]
    return statistics.median(numbers) if numbers else float("nan")


def _fmt(value: float, unit: str = "") -> str:
    if value != value:  # NaN
        return "—"
    if unit == "ms":
        return f"{value:.1f} ms" if value < 100 else f"{value:.0f} ms"
    if unit == "int":
        return f"{value:.0f}"
    if unit == "cpu":  # CPU seconds per 1k: milliseconds of CPU per request, 2-3 digits
        return f"{value:.3f}" if value < 1 else (f"{value:.2f}" if value < 10 else f"{value:.1f}")
    if value >= 10_000:
        return f"{value:,.0f}"
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}"


def _ratio(a: float, b: float) -> str:
    if a != a or b != b or b == 0:
        return "—"
    return f"{a / b:.2f}x"


def _rps(r: Run) -> float:
    return r.result.rps


def _p50(r: Run) -> float:
    return r.result.p50_ms


def _p99(r: Run) -> float:
    return r.result.p99_ms


def _bad(r: Run) -> float:
    """Non-2xx responses plus socket errors."""
    return float(r.result.non_2xx + r.result.socket_errors)


def _rows_per_s(r: Run) -> float:
    return r.rows_per_s


def _cpu_per_1k_requests(r: Run) -> float:
    return r.cpu_s_per_1k_requests


def _cpu_per_1k_rows(r: Run) -> float:
    return r.cpu_s_per_1k_rows


def _rss_worker(r: Run) -> float:
    return r.rss_worker_mib


def _rss_total(r: Run) -> float:
    return r.rss_total_mib


@dataclass(frozen=True)
class Column:
    """One measured column of a table; ``ratio`` columns also get "baseline ÷ it"."""

    header: str
    metric: Metric
    unit: str = ""
    ratio: bool = False


SINGLE_COLUMNS = (
    Column("req/s", _rps, ratio=True),
    Column("p50", _p50, "ms", ratio=True),
    Column("p99", _p99, "ms", ratio=True),
    Column("non-2xx + socket errors", _bad, "int"),
    Column("CPU-s / 1k req", _cpu_per_1k_requests, "cpu", ratio=True),
    Column("RSS / worker (MiB)", _rss_worker, "int"),
    Column("RSS total (MiB)", _rss_total, "int"),
)
COLD_COLUMNS = (
    Column("req/s", _rps, ratio=True),
    Column("p99", _p99, "ms", ratio=True),
    Column("non-2xx + socket errors", _bad, "int"),
    Column("CPU-s / 1k req", _cpu_per_1k_requests, "cpu", ratio=True),
)
BATCH_COLUMNS = (
    Column("req/s", _rps),
    Column("rows/s", _rows_per_s, ratio=True),
    Column("p50", _p50, "ms", ratio=True),
    Column("p99", _p99, "ms", ratio=True),
    Column("non-2xx + socket errors", _bad, "int"),
    Column("CPU-s / 1k rows", _cpu_per_1k_rows, "cpu", ratio=True),
    Column("RSS / worker (MiB)", _rss_worker, "int"),
)


def _verdict(met: bool) -> str:
    return "MET   " if met else "MISSED"


@dataclass(frozen=True)
class TargetInfo:
    """A target as the runs name it: which server, at how many workers."""

    name: str
    server: str
    workers: int

    @property
    def label(self) -> str:
        return LABELS.get(self.server, self.server)


@dataclass
class Summary:
    """Medians per (kind, target, connections, rows) over the rounds."""

    runs: list[Run]

    def select(self, kind: str, target: str, connections: int, rows: int = 1) -> list[Run]:
        return [
            r
            for r in self.runs
            if r.kind == kind
            and r.target == target
            and r.connections == connections
            and r.rows == rows
        ]

    def med(self, metric: Metric, *key: object) -> float:
        return median([metric(r) for r in self.select(*key)])  # type: ignore[arg-type]

    def ran(self) -> set[str]:
        """The targets with at least one run."""
        return {r.target for r in self.runs}

    def targets(self) -> list[TargetInfo]:
        """Every target with a run, in the order they first ran."""
        seen: dict[str, TargetInfo] = {}
        for r in self.runs:
            seen.setdefault(r.target, TargetInfo(r.target, r.server or r.target, r.workers))
        return list(seen.values())


def default_baseline(targets: Sequence[TargetInfo]) -> str:
    """The first service target (or the first target, if the service did not run)."""
    return next((t.name for t in targets if t.server == SERVICE), targets[0].name)


def _ordered(targets: Sequence[TargetInfo], baseline: str) -> list[TargetInfo]:
    """The baseline first, then the others in run order."""
    return sorted(targets, key=lambda t: t.name != baseline)


def _workers(t: TargetInfo) -> str:
    return str(t.workers) if t.workers else "—"


def cell_table(
    summary: Summary,
    title: str,
    key: tuple[str, int, int],
    columns: Sequence[Column],
    targets: Sequence[TargetInfo],
    baseline: str,
) -> list[str]:
    """One cell (``key`` = kind, connections, rows) as a table: a row per target that ran it,
    its medians, then "baseline ÷ it" for the ratio columns (for latencies and CPU, below 1
    means the baseline is better)."""
    kind, conns, rows = key
    present = [t for t in _ordered(targets, baseline) if summary.select(kind, t.name, conns, rows)]
    if not present:
        return []
    ratio_columns = [c for c in columns if c.ratio]
    lines = [
        "",
        f"| {title} | workers | "
        + " | ".join(c.header for c in columns)
        + "".join(f" | {baseline} ÷ it: {c.header}" for c in ratio_columns)
        + " |",
        "|---|--:|" + "--:|" * (len(columns) + len(ratio_columns)),
    ]
    for t in present:
        values = {c.header: summary.med(c.metric, kind, t.name, conns, rows) for c in columns}
        ratios = [
            "—"
            if t.name == baseline
            else _ratio(summary.med(c.metric, kind, baseline, conns, rows), values[c.header])
            for c in ratio_columns
        ]
        cells = [_fmt(values[c.header], c.unit) for c in columns] + ratios
        lines.append(f"| {t.label} | {_workers(t)} | {' | '.join(cells)} |")
    return lines


def _idle_table(idle: Idle | None, targets: Sequence[TargetInfo], baseline: str) -> list[str]:
    if not idle or baseline not in idle:
        return []
    whens = ("fresh", "after load")
    lines = [
        "",
        "| p50 of lone sequential requests | workers | server just started "
        f"| right after the last load | {baseline} ÷ it: just started | after load |",
        "|---|--:|--:|--:|--:|--:|",
    ]
    for t in _ordered(targets, baseline):
        values = [idle.get(t.name, {}).get(w, float("nan")) for w in whens]
        ratios = [
            "—" if t.name == baseline else _ratio(idle[baseline].get(w, float("nan")), v)
            for w, v in zip(whens, values, strict=True)
        ]
        cells = [_fmt(v, "ms") for v in values] + ratios
        lines.append(f"| {t.label} | {_workers(t)} | {' | '.join(cells)} |")
    return lines


def _cpu_share_table(
    summary: Summary,
    targets: Sequence[TargetInfo],
    connections: Sequence[int],
    batch_rows: Sequence[int],
    batch_connections: int,
) -> list[str]:
    """Who used the machine during each cell: wrk, the target, everything else."""
    groups = [
        (f"single @ {c} conns → {t.label} ({t.name})", summary.select("single", t.name, c))
        for c in connections
        for t in targets
    ] + [
        (
            f"batch {n} rows → {t.label} ({t.name})",
            summary.select("batch", t.name, batch_connections, n),
        )
        for t in targets
        for n in batch_rows
    ]
    lines = [
        "",
        "| CPU share of the machine (median over runs) | wrk (load generator) | target server "
        "| everything else | wrk ÷ (wrk + server) |",
        "|---|--:|--:|--:|--:|",
    ]
    for label, runs in groups:
        if not runs:
            continue
        wrk = median([r.share(r.wrk_cpu_s) for r in runs])
        srv = median([r.share(r.server_cpu_s) for r in runs])
        other = median([r.share(r.other_cpu_s) for r in runs])
        gen = median([r.wrk_cpu_s / max(r.wrk_cpu_s + r.server_cpu_s, 1e-9) for r in runs])
        lines.append(f"| {label} | {wrk:.0%} | {srv:.0%} | {other:.0%} | {gen:.0%} |")
    return lines


def best_worker_counts(
    summary: Summary, targets: Sequence[TargetInfo], connections: Sequence[int]
) -> dict[str, dict[int, tuple[int, float]]]:
    """For each server measured at several worker counts: connections -> (the count with the
    highest median single-row req/s, that req/s)."""
    by_server: dict[str, list[TargetInfo]] = {}
    for t in targets:
        by_server.setdefault(t.server, []).append(t)
    best: dict[str, dict[int, tuple[int, float]]] = {}
    for server, members in by_server.items():
        if len(members) < 2:
            continue
        for conns in connections:
            rps = {t.workers: summary.med(_rps, "single", t.name, conns) for t in members}
            measured = {w: v for w, v in rps.items() if v == v}
            if measured:
                top = max(measured, key=lambda w: measured[w])
                best.setdefault(server, {})[conns] = (top, measured[top])
    return best


def _best_workers_table(
    summary: Summary, targets: Sequence[TargetInfo], connections: Sequence[int]
) -> list[str]:
    best = best_worker_counts(summary, targets, connections)
    if not best:
        return []
    lines = [
        "",
        "| best worker count (highest median req/s) | "
        + " | ".join(f"@ {c} conns" for c in connections)
        + " |",
        "|---|" + "--:|" * len(connections),
    ]
    for server, per_conns in best.items():
        cells = [
            f"{per_conns[c][0]} ({_fmt(per_conns[c][1])} req/s)" if c in per_conns else "—"
            for c in connections
        ]
        lines.append(f"| {LABELS.get(server, server)} | {' | '.join(cells)} |")
    return lines


def _counterpart(targets: Sequence[TargetInfo], server: str, workers: int) -> TargetInfo | None:
    """The target of ``server`` at ``workers`` workers, else its first target, else None."""
    members = [t for t in targets if t.server == server]
    same = [t for t in members if t.workers == workers]
    return (same or members or [None])[0]


def _single_verdicts(
    summary: Summary, connections: Sequence[int], targets: Sequence[TargetInfo], baseline: str
) -> list[str]:
    """RPS ratio to the tutorial app (if it ran), errors and p99 at 64 connections (or the
    first count), and no errors at the other counts even in the worst round."""
    verdicts: list[str] = []
    c0 = 64 if 64 in connections else connections[0]
    base = next(t for t in targets if t.name == baseline)
    tutorial = _counterpart(targets, TUTORIAL, base.workers)
    if tutorial is not None:
        a = summary.med(_rps, "single", baseline, c0)
        b = summary.med(_rps, "single", tutorial.name, c0)
        ratio = a / b if b else float("nan")
        verdicts.append(
            f"{_verdict(ratio >= TARGET_RATIO_64)} single-row RPS @ {c0} conns >= "
            f"{TARGET_RATIO_64:.0f}x the tutorial app ({baseline} ÷ {tutorial.name}): {ratio:.2f}x"
        )
    bad0 = summary.med(_bad, "single", baseline, c0)
    p990 = summary.med(_p99, "single", baseline, c0)
    verdicts.append(f"{_verdict(bad0 == 0)} 0 non-2xx @ {c0} conns: {bad0:.0f}")
    verdicts.append(
        f"{_verdict(p990 <= TARGET_P99_64_MS)} p99 @ {c0} conns "
        f"<= {TARGET_P99_64_MS:.0f} ms: {p990:.1f} ms"
    )
    for conns in connections:
        if conns == c0:
            continue
        worst = max((_bad(r) for r in summary.select("single", baseline, conns)), default=0.0)
        verdicts.append(
            f"{_verdict(worst == 0)} 0 non-2xx @ {conns} conns (worst round): {worst:.0f}"
        )
    return verdicts


def _batch_verdict(
    summary: Summary, batch_rows: Sequence[int], batch_connections: int, baseline: str
) -> str:
    """The best batch size's rows/s against the target."""
    best = max(
        (summary.med(_rows_per_s, "batch", baseline, batch_connections, n) for n in batch_rows),
        default=0.0,
    )
    return (
        f"{_verdict(best >= TARGET_BATCH_ROWS_S)} batch endpoint "
        f">= {TARGET_BATCH_ROWS_S:,} rows/s: {best:,.0f}"
    )


def target_verdicts(
    summary: Summary,
    connections: Sequence[int],
    batch_rows: Sequence[int],
    batch_connections: int,
    baseline: str | None = None,
) -> list[str]:
    """The issue's targets for the baseline, each a line starting with ``MET`` or ``MISSED``."""
    targets = summary.targets()
    if not targets:
        return []
    baseline = baseline or default_baseline(targets)
    verdicts = _single_verdicts(summary, connections, targets, baseline) if connections else []
    if batch_rows:
        verdicts.append(_batch_verdict(summary, batch_rows, batch_connections, baseline))
    return verdicts


def render(
    summary: Summary,
    connections: Sequence[int],
    batch_rows: Sequence[int],
    batch_connections: int,
    header: str,
    idle: Idle | None = None,
    baseline: str | None = None,
) -> tuple[str, list[str]]:
    """Markdown tables plus the issue's targets as met/missed lines.

    One table per cell (single rows at each connection count, the cold start, lone requests,
    each batch size), a row per target that ran it, the baseline (default: the first service
    target) first, and ratio columns "baseline ÷ it" (above 1 is better for the baseline in
    req/s and rows/s, below 1 for latencies and CPU per request)."""
    targets = summary.targets()
    if not targets:
        return header + "\n\n(no runs)", []
    baseline = baseline or default_baseline(targets)
    cold_runs = [r for r in summary.runs if r.kind == "cold"]
    cold_s = round(cold_runs[0].wall_s) if cold_runs else 0
    lines = [header]
    for conns in connections:
        title = f"single-row `/v1/predict` @ {conns} conns"
        lines += cell_table(summary, title, ("single", conns, 1), SINGLE_COLUMNS, targets, baseline)
    lines += cell_table(
        summary,
        f"cold start: first {cold_s} s after ready @ {COLD_CONNECTIONS} conns",
        ("cold", COLD_CONNECTIONS, 1),
        COLD_COLUMNS,
        targets,
        baseline,
    )
    lines += _idle_table(idle, targets, baseline)
    for rows in batch_rows:
        title = f"`/v1/predict/batch`, {rows} rows per call @ {batch_connections} conns"
        lines += cell_table(
            summary, title, ("batch", batch_connections, rows), BATCH_COLUMNS, targets, baseline
        )
    lines += _best_workers_table(summary, targets, connections)
    lines += _cpu_share_table(summary, targets, connections, batch_rows, batch_connections)
    verdicts = target_verdicts(summary, connections, batch_rows, batch_connections, baseline)
    return "\n".join(lines), verdicts


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
            f"| {r.result.rps:.0f} | {_fmt(r.result.p50_ms, 'ms')} | {_fmt(r.result.p99_ms, 'ms')} "
            f"| {r.result.non_2xx + r.result.socket_errors} "
            f"| {_fmt(r.cpu_s_per_1k_requests, 'cpu')} | {_fmt(r.rss_worker_mib, 'int')} "
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
            "Targets (issue 5):",
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
