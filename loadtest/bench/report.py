"""The report: medians over the rounds as Markdown tables, the issue's targets as met/missed
lines, and every run in the order it ran."""

from __future__ import annotations

import json
import os
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

from loadtest.bench.common import (
    BENTO,
    COLD_CONNECTIONS,
    CORES,
    LABELS,
    NO_BATCH,
    REFERENCE,
    SHORT,
    VARIANT,
)
from loadtest.bench.runs import Run

# Targets of issue 5 (benchmark figures, printed as met / missed).
TARGET_RATIO_64 = 2.0
TARGET_P99_64_MS = 50.0
TARGET_BATCH_ROWS_S = 100_000

Metric = Callable[[Run], float]
Idle = dict[str, dict[str, float]]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _fmt(value: float, unit: str = "") -> str:
    if value != value:  # NaN
        return "—"
    if unit == "ms":
        return f"{value:.1f} ms" if value < 100 else f"{value:.0f} ms"
    if unit == "int":
        return f"{value:.0f}"
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


def _verdict(met: bool) -> str:
    return "MET   " if met else "MISSED"


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


def _cells(
    summary: Summary, others: Sequence[str], kind: str, conns: int, metric: Metric, unit: str
) -> str:
    """The service's median, then each other target's and the ratio service ÷ it."""
    a = summary.med(metric, kind, BENTO, conns)
    out = [_fmt(a, unit)]
    for t in others:
        b = summary.med(metric, kind, t, conns)
        out += [_fmt(b, unit), "—" if unit == "int" else _ratio(a, b)]
    return " | ".join(out)


def _single_rows(summary: Summary, others: Sequence[str], connections: Sequence[int]) -> list[str]:
    lines = [
        f"| single-row `/v1/predict` | {LABELS[BENTO]} | "
        + " | ".join(f"{LABELS[t]} | BentoML ÷ {SHORT[t]}" for t in others)
        + " |",
        "|---|--:|" + "--:|--:|" * len(others),
    ]
    for conns in connections:
        for name, metric, unit in (
            ("requests/s", _rps, ""),
            ("p50", _p50, "ms"),
            ("p99", _p99, "ms"),
            ("non-2xx + socket errors", _bad, "int"),
        ):
            cells = _cells(summary, others, "single", conns, metric, unit)
            lines.append(f"| {name} @ {conns} conns | {cells} |")
    return lines


def _cold_rows(summary: Summary, others: Sequence[str]) -> list[str]:
    cold = [r for r in summary.runs if r.kind == "cold"]
    if not cold:
        return []
    seconds = round(cold[0].wall_s)
    lines = []
    for name, metric, unit in (("requests/s", _rps, ""), ("p99", _p99, "ms")):
        cells = _cells(summary, others, "cold", COLD_CONNECTIONS, metric, unit)
        lines.append(
            f"| cold start: {name} in the first {seconds} s after ready (64 conns) | {cells} |"
        )
    return lines


def _idle_rows(idle: Idle | None, others: Sequence[str]) -> list[str]:
    lines = []
    for when in ("fresh", "after load"):
        if not idle or BENTO not in idle or when not in idle[BENTO]:
            continue
        a = idle[BENTO][when]
        out = [_fmt(a, "ms")]
        for t in others:
            b = idle.get(t, {}).get(when, float("nan"))
            out += [_fmt(b, "ms"), _ratio(a, b)]
        label = "server just started" if when == "fresh" else "right after the last load"
        lines.append(f"| p50 of lone sequential requests, {label} | {' | '.join(out)} |")
    return lines


def _batch_table(summary: Summary, batch_rows: Sequence[int], batch_connections: int) -> list[str]:
    lines = [
        "",
        f"| `/v1/predict/batch` ({batch_connections} conns) | requests/s | rows/s "
        "| p50 | p99 | non-2xx + socket errors |",
        "|---|--:|--:|--:|--:|--:|",
    ]
    for target in (BENTO, VARIANT):
        for rows in batch_rows:
            key = ("batch", target, batch_connections, rows)
            if not summary.select(*key):  # type: ignore[arg-type]
                continue
            label = f"{rows} rows per call" + ("" if target == BENTO else f" ({LABELS[target]})")
            lines.append(
                f"| {label} | {_fmt(summary.med(_rps, *key))} "
                f"| {_fmt(summary.med(_rows_per_s, *key))} "
                f"| {_fmt(summary.med(_p50, *key), 'ms')} | {_fmt(summary.med(_p99, *key), 'ms')} "
                f"| {_fmt(summary.med(_bad, *key), 'int')} |"
            )
    return lines


def _cpu_groups(
    summary: Summary,
    others: Sequence[str],
    connections: Sequence[int],
    batch_rows: Sequence[int],
    batch_connections: int,
) -> list[tuple[str, list[Run]]]:
    """(row label, runs) for each single-row and batch cell of the tables."""
    single = [
        (f"single @ {c} conns → {LABELS[t]}", summary.select("single", t, c))
        for c in connections
        for t in (BENTO, *others)
    ]
    batch = [
        (f"batch {rows} rows → {LABELS[t]}", summary.select("batch", t, batch_connections, rows))
        for t in (BENTO, VARIANT)
        for rows in batch_rows
    ]
    return single + batch


def _cpu_table(groups: Sequence[tuple[str, list[Run]]]) -> list[str]:
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


def _single_verdicts(summary: Summary, connections: Sequence[int]) -> list[str]:
    """RPS ratio to the plain app (if it ran), errors and p99 at 64 connections (or the first
    count), and no errors at the other counts even in the worst round."""
    verdicts: list[str] = []
    c0 = 64 if 64 in connections else connections[0]
    if REFERENCE in summary.ran():
        a = summary.med(_rps, "single", BENTO, c0)
        b = summary.med(_rps, "single", REFERENCE, c0)
        ratio = a / b if b else float("nan")
        verdicts.append(
            f"{_verdict(ratio >= TARGET_RATIO_64)} single-row RPS @ {c0} "
            f"conns >= {TARGET_RATIO_64:.0f}x plain: {ratio:.2f}x"
        )
    bad0 = summary.med(_bad, "single", BENTO, c0)
    p990 = summary.med(_p99, "single", BENTO, c0)
    verdicts.append(f"{_verdict(bad0 == 0)} 0 non-2xx @ {c0} conns: {bad0:.0f}")
    verdicts.append(
        f"{_verdict(p990 <= TARGET_P99_64_MS)} p99 @ {c0} conns "
        f"<= {TARGET_P99_64_MS:.0f} ms: {p990:.1f} ms"
    )
    for conns in connections:
        if conns == c0:
            continue
        worst = max((_bad(r) for r in summary.select("single", BENTO, conns)), default=0.0)
        verdicts.append(
            f"{_verdict(worst == 0)} 0 non-2xx @ {conns} conns (worst round): {worst:.0f}"
        )
    return verdicts


def _batch_verdict(summary: Summary, batch_rows: Sequence[int], batch_connections: int) -> str:
    """The best batch size's rows/s against the target."""
    best = max(
        (summary.med(_rows_per_s, "batch", BENTO, batch_connections, n) for n in batch_rows),
        default=0.0,
    )
    return (
        f"{_verdict(best >= TARGET_BATCH_ROWS_S)} batch endpoint "
        f">= {TARGET_BATCH_ROWS_S:,} rows/s: {best:,.0f}"
    )


def target_verdicts(
    summary: Summary, connections: Sequence[int], batch_rows: Sequence[int], batch_connections: int
) -> list[str]:
    """The issue's targets, each a line starting with ``MET`` or ``MISSED``."""
    verdicts = _single_verdicts(summary, connections) if connections else []
    if batch_rows:
        verdicts.append(_batch_verdict(summary, batch_rows, batch_connections))
    return verdicts


def render(
    summary: Summary,
    connections: Sequence[int],
    batch_rows: Sequence[int],
    batch_connections: int,
    header: str,
    idle: Idle | None = None,
) -> tuple[str, list[str]]:
    """Markdown tables plus the issue's targets as met/missed lines.

    The service (batching on) comes first; every other target that ran gets its own column and
    a ratio column "BentoML ÷ it" (for latencies, below 1 means the service is faster).
    """
    ran = summary.ran()
    others = [t for t in (REFERENCE, NO_BATCH, VARIANT) if t in ran]
    groups = _cpu_groups(summary, others, connections, batch_rows, batch_connections)
    lines = [
        header,
        "",
        *_single_rows(summary, others, connections),
        *_cold_rows(summary, others),
        *_idle_rows(idle, others),
        *_batch_table(summary, batch_rows, batch_connections),
        *_cpu_table(groups),
    ]
    verdicts = target_verdicts(summary, connections, batch_rows, batch_connections)
    return "\n".join(lines), verdicts


def runs_table(runs: Sequence[Run]) -> str:
    """Every run in the order it ran (for the noise: compare rounds of the same cell)."""
    lines = [
        "| # | round | kind | target | conns | rows | req/s | p50 | p99 | non-2xx | "
        "mean batch | busiest / 2nd process (cores) | wrk CPU | server CPU | other CPU |",
        "|--:|--:|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for i, r in enumerate(runs, 1):
        mean_batch = r.extra.get("mean_requests_per_batch", float("nan"))
        lines.append(
            f"| {i} | {r.round} | {r.kind} | {r.target} | {r.connections} | {r.rows} "
            f"| {r.result.rps:.0f} | {_fmt(r.result.p50_ms, 'ms')} | {_fmt(r.result.p99_ms, 'ms')} "
            f"| {r.result.non_2xx + r.result.socket_errors} "
            f"| {'—' if mean_batch != mean_batch else f'{mean_batch:.1f}'} "
            f"| {r.extra.get('busiest_process_core', 0):.2f} / {r.extra.get('second_process_core', 0):.2f} "
            f"| {r.share(r.wrk_cpu_s):.0%} | {r.share(r.server_cpu_s):.0%} "
            f"| {r.share(r.other_cpu_s):.0%} |"
        )
    return "\n".join(lines)


def bench_header(
    tag: str, workers: int, rounds: int, duration: int, threads: int, code: str
) -> str:
    """The report's first line: when, where, what ran and how busy the machine was after."""
    load = os.getloadavg()
    return (
        f"Benchmark {datetime.now().isoformat(timespec='seconds')} on {CORES} cores "
        f"({os.uname().nodename}); model {tag}; {workers} workers per server; "
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


def write_results(out: Path, report: str, runs: Sequence[Run]) -> None:
    """``bench.md`` (the report) and ``runs.json`` (every run) in ``out``."""
    (out / "bench.md").write_text(report + "\n")
    (out / "runs.json").write_text(
        json.dumps([{**asdict(r), "rows_per_s": r.rows_per_s} for r in runs], indent=1, default=str)
    )
