"""The report: per cell, one Markdown table with a row per target (medians over the rounds and
the ratios "baseline ÷ it"), and the issue's targets as met/missed lines. The cells are
``cells``'s; every run in the order it ran, and the files, are ``results``'s."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from loadtest.bench.cells import (
    BATCH_COLUMNS,
    COLD_COLUMNS,
    SINGLE_COLUMNS,
    Column,
    Metric,
    failed_requests,
    format_ratio,
    format_value,
    median,
    p99_ms,
    requests_per_s,
    rows_per_s,
)
from loadtest.bench.common import COLD_CONNECTIONS, LABELS, SERVICE, TUTORIAL
from loadtest.bench.runs import Run

# Targets of issue 5 (benchmark figures, printed as met / missed).
TARGET_RATIO_64 = 2.0
TARGET_P99_64_MS = 50.0
TARGET_BATCH_ROWS_S = 100_000

Idle = dict[str, dict[str, float]]


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
            else format_ratio(summary.med(c.metric, kind, baseline, conns, rows), values[c.header])
            for c in ratio_columns
        ]
        cells = [format_value(values[c.header], c.unit) for c in columns] + ratios
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
            "—" if t.name == baseline else format_ratio(idle[baseline].get(w, float("nan")), v)
            for w, v in zip(whens, values, strict=True)
        ]
        cells = [format_value(v, "ms") for v in values] + ratios
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
            rps = {t.workers: summary.med(requests_per_s, "single", t.name, conns) for t in members}
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
            f"{per_conns[c][0]} ({format_value(per_conns[c][1])} req/s)" if c in per_conns else "—"
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
        a = summary.med(requests_per_s, "single", baseline, c0)
        b = summary.med(requests_per_s, "single", tutorial.name, c0)
        ratio = a / b if b else float("nan")
        verdicts.append(
            f"{_verdict(ratio >= TARGET_RATIO_64)} single-row RPS @ {c0} conns >= "
            f"{TARGET_RATIO_64:.0f}x the tutorial app ({baseline} ÷ {tutorial.name}): {ratio:.2f}x"
        )
    bad0 = summary.med(failed_requests, "single", baseline, c0)
    p990 = summary.med(p99_ms, "single", baseline, c0)
    verdicts.append(f"{_verdict(bad0 == 0)} 0 non-2xx @ {c0} conns: {bad0:.0f}")
    verdicts.append(
        f"{_verdict(p990 <= TARGET_P99_64_MS)} p99 @ {c0} conns "
        f"<= {TARGET_P99_64_MS:.0f} ms: {p990:.1f} ms"
    )
    for conns in connections:
        if conns == c0:
            continue
        worst = max(
            (failed_requests(r) for r in summary.select("single", baseline, conns)), default=0.0
        )
        verdicts.append(
            f"{_verdict(worst == 0)} 0 non-2xx @ {conns} conns (worst round): {worst:.0f}"
        )
    return verdicts


def _batch_verdict(
    summary: Summary, batch_rows: Sequence[int], batch_connections: int, baseline: str
) -> str:
    """The best batch size's rows/s against the target."""
    best = max(
        (summary.med(rows_per_s, "batch", baseline, batch_connections, n) for n in batch_rows),
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
