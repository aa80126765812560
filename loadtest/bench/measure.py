"""Measuring the targets: wrk runs in alternating order over the rounds, cold starts, and the
latency of lone requests before and after the load."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from loadtest.bench.common import COLD_CONNECTIONS, REPO_ROOT, Target
from loadtest.bench.probes import batch_metrics, sequential_p50_ms
from loadtest.bench.runs import Run
from loadtest.bench.wrk import Measured, parse_wrk, run_wrk
from loadtest.wrk_bodies import WrkBodies

SINGLE_SCRIPT = REPO_ROOT / "loadtest" / "predict.lua"
BATCH_SCRIPT = REPO_ROOT / "loadtest" / "bench.lua"


@dataclass(frozen=True)
class Plan:
    """What to measure, and where the wrk outputs go."""

    out: Path
    threads: int  # wrk threads
    duration: int  # s per wrk run
    warmup: int  # s of load per server before measuring
    rounds: int
    connections: Sequence[int]
    batch_rows: Sequence[int]
    batch_connections: int
    bodies: WrkBodies | None = None
    """The bodies files, written from the service's contract once it runs."""


def batch_targets(order: Sequence[Target]) -> list[Target]:
    """The targets that get the batch endpoint runs (those with a batch route)."""
    return [t for t in order if t.has_batch_route]


def _wrk_job(plan: Plan, kind: str, rows: int) -> tuple[str, Path, list[str]]:
    """(path, Lua script, script arguments: its bodies file) for a ``single`` or ``batch``
    run."""
    assert plan.bodies is not None, "write the bodies files first (loadtest.wrk_bodies)"
    if kind == "single":
        return "/v1/predict", SINGLE_SCRIPT, plan.bodies.script_args()
    return "/v1/predict/batch", BATCH_SCRIPT, plan.bodies.script_args(rows)


def process_spread(measured: Measured) -> dict[str, float]:
    """Share of one core used by the busiest server process, and by the next one: shows
    whether the connections were spread over the workers."""
    wall, cpu = measured.wall_s, measured.process_cpu_s
    return {
        "busiest_process_core": cpu[0] / wall,
        "second_process_core": cpu[1] / wall if len(cpu) > 1 else 0.0,
    }


def _add_mean_batch(
    extra: dict[str, float], before: tuple[float, float], after: tuple[float, float]
) -> None:
    """Requests per model batch during the run, from two /metrics readings (if any batch ran)."""
    batches = after[0] - before[0]
    if batches:
        extra["mean_requests_per_batch"] = (after[1] - before[1]) / batches


def measure(
    plan: Plan, kind: str, target: Target, conns: int, rows: int, rnd: int, duration: int
) -> Run:
    """One wrk run against ``target``; its output is kept in ``<out>/wrk/``."""
    path, script, script_args = _wrk_job(plan, kind, rows)
    has_batches = target.reports_batching
    before = batch_metrics(target.url) if has_batches else (0.0, 0.0)
    measured = run_wrk(
        target,
        path=path,
        script=script,
        script_args=script_args,
        connections=conns,
        duration_s=duration,
        threads=plan.threads,
    )
    extra = process_spread(measured)
    if has_batches:
        _add_mean_batch(extra, before, batch_metrics(target.url))
    run = Run(
        kind,
        target.name,
        conns,
        rows,
        rnd,
        measured.wall_s,
        parse_wrk(measured.stdout),
        measured.wrk_cpu_s,
        measured.server_cpu_s,
        measured.machine_cpu_s,
        extra,
        server=target.server,
        workers=target.workers,
        rss_worker_mib=measured.rss_worker_mib,
        rss_total_mib=measured.rss_total_mib,
    )
    (plan.out / "wrk").mkdir(exist_ok=True)
    (plan.out / "wrk" / f"{kind}-{target.name}-c{conns}-r{rows}-{rnd}.txt").write_text(
        measured.stdout
    )
    return run


def cold_starts(plan: Plan, order: Sequence[Target]) -> list[Run]:
    """Warm-up, reported as the cold start: the first seconds of load after /readyz (the
    dispatcher trains its latency model on them, caches fill, pools open)."""
    cold: list[Run] = []
    for target in order:
        run = measure(plan, "single", target, COLD_CONNECTIONS, 1, 0, plan.warmup)
        run.kind = "cold"
        cold.append(run)
        print(
            f"  cold start {target.name:16s} first {plan.warmup} s at 64 conns: "
            f"{run.result.rps:.0f} req/s, p99 {run.result.p99_ms:.0f} ms",
            flush=True,
        )
    return cold


def single_round(plan: Plan, order: Sequence[Target], rnd: int) -> list[Run]:
    """Single-row runs of one round: every connection count, targets in ``order``."""
    runs: list[Run] = []
    for conns in plan.connections:
        for target in order:
            run = measure(plan, "single", target, conns, 1, rnd, plan.duration)
            runs.append(run)
            print(
                f"  round {rnd} single {target.name:16s} c={conns:<4d} "
                f"{run.result.rps:8.0f} req/s  p50 {run.result.p50_ms:7.1f} ms  "
                f"p99 {run.result.p99_ms:7.1f} ms  non-2xx {run.result.non_2xx}  "
                f"CPU-s/1k {run.cpu_s_per_1k_requests:.3f}  RSS/worker {run.rss_worker_mib:.0f} MiB  "
                f"wrk {run.share(run.wrk_cpu_s):.0%} server {run.share(run.server_cpu_s):.0%} "
                f"other {run.share(run.other_cpu_s):.0%}",
                flush=True,
            )
    return runs


def batch_round(
    plan: Plan, order: Sequence[Target], rows_order: Sequence[int], rnd: int
) -> list[Run]:
    """Batch-endpoint runs of one round: every batch size, targets in ``order``."""
    runs: list[Run] = []
    for rows in rows_order:
        for target in order:
            run = measure(plan, "batch", target, plan.batch_connections, rows, rnd, plan.duration)
            runs.append(run)
            print(
                f"  round {rnd} batch  {target.name:16s} {rows:5d} rows/call "
                f"{run.rows_per_s:8.0f} rows/s "
                f"p50 {run.result.p50_ms:7.1f} ms  p99 {run.result.p99_ms:7.1f} ms  "
                f"non-2xx {run.result.non_2xx}  CPU-s/1k rows {run.cpu_s_per_1k_rows:.3f}",
                flush=True,
            )
    return runs


def measure_rounds(plan: Plan, order: Sequence[Target]) -> list[Run]:
    """All rounds, in alternating order (odd rounds as given, even rounds reversed) so slow
    drift of a noisy machine hits every target alike."""
    batch_order = batch_targets(order)
    runs: list[Run] = []
    for rnd in range(1, plan.rounds + 1):
        forward = rnd % 2
        runs += single_round(plan, order if forward else order[::-1], rnd)
        rows_order = plan.batch_rows if forward else list(reversed(plan.batch_rows))
        runs += batch_round(plan, batch_order if forward else batch_order[::-1], rows_order, rnd)
    return runs


def probe_idle(
    plan: Plan, order: Sequence[Target], when: str, idle: dict[str, dict[str, float]]
) -> None:
    """Record each target's p50 of lone sequential requests under ``idle[name][when]``."""
    assert plan.bodies is not None
    for target in order:
        idle[target.name][when] = sequential_p50_ms(target.url, plan.bodies.probe)
