"""The report of a shadow-cost run: medians per configuration, on/off ratios with the spread of
the per-round paired ratios, the same over quiet rounds only, where the server CPU goes, and the
verdicts against the 5 % budget."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from loadtest.bench.cells import median
from loadtest.shadow_cost.configs import JOBS, OFF
from loadtest.shadow_cost.counters import OUTCOMES, ShadowCounters
from loadtest.shadow_cost.runs import RunRecord


def _spread(values: Sequence[float], fmt: str) -> str:
    return f"{format(min(values), fmt)}-{format(max(values), fmt)}" if values else "-"


METRICS = {
    "req/s": ("rps", ".0f"),
    "p50 ms": ("p50_ms", ".1f"),
    "p99 ms": ("p99_ms", ".1f"),
    "CPU ms/req": ("cpu_ms_per_request", ".3f"),
}


def outcome_shares(runs: Sequence[RunRecord]) -> dict[str, float]:
    """Per cent of the rows the servers predicted in ``runs``, by shadow outcome."""
    total = sum(r.shadow_rows for r in runs)
    return {
        o: 100 * sum(r.counters.rows.get(o, 0.0) for r in runs) / (total or 1) for o in OUTCOMES
    }


QUIET_SHARE = 0.10
"""A run is quiet when everything else on the machine used less than this share of its CPU."""


def is_quiet(run: RunRecord, cores: int) -> bool:
    seconds = run.requests / run.rps if run.rps else 0.0
    return run.other_cpu_s <= QUIET_SHARE * cores * seconds


def paired_ratios(
    records: Sequence[RunRecord],
    job: str,
    config: str,
    attribute: str,
    rounds: Iterable[int] | None = None,
) -> list[float]:
    """``config`` ÷ ``off`` of ``attribute``, per round (the two ran back to back); only
    ``rounds`` when given."""
    by_round = {(r.round, r.config): float(getattr(r, attribute)) for r in records if r.job == job}
    if rounds is None:
        rounds = {r.round for r in records if r.job == job}
    rounds = sorted(rounds)
    return [
        by_round[n, config] / by_round[n, OFF]
        for n in rounds
        if (n, config) in by_round and (n, OFF) in by_round and by_round[n, OFF] > 0
    ]


def report(records: Sequence[RunRecord], configs: Sequence[str], fraction: float) -> list[str]:
    """The tables (Markdown) and the verdict lines, from finished runs."""
    jobs = [j for j in JOBS if any(r.job == j for r in records)]
    lines = [
        "Medians over the rounds (min-max in brackets).",
        "",
        "| run | config | req/s | p50 ms | p99 ms | server CPU ms/req | non-2xx"
        " | shadow: rows scored (dropped overload, queue full; failed) |",
        "|---|---|--:|--:|--:|--:|--:|--:|",
    ]
    for job in jobs:
        for config in configs:
            runs = [r for r in records if r.job == job and r.config == config]
            if not runs:
                continue
            cells = []
            for _, (attribute, fmt) in METRICS.items():
                values = [float(getattr(r, attribute)) for r in runs]
                cells.append(f"{format(median(values), fmt)} ({_spread(values, fmt)})")
            shadow = "-"
            if config != OFF:
                share = outcome_shares(runs)
                shadow = (
                    f"{share['scored']:.1f} % ({share['dropped_overload']:.1f} %,"
                    f" {share['dropped_queue_full']:.1f} %; {share['failed']:.1f} %)"
                )
            lines.append(
                f"| {job} {JOBS[job].label} | {config} | {' | '.join(cells)}"
                f" | {sum(r.non_2xx for r in runs)} | {shadow} |"
            )
    lines += [
        "",
        "Ratios to off: the median of the per-round paired ratios (each round ran both back to"
        " back; min-max in brackets), and the ratio of the medians.",
        "",
        "| run | config | req/s | p50 | p99 | server CPU/req |",
        "|---|---|--:|--:|--:|--:|",
    ]
    verdicts = []
    for job in jobs:
        off = [r for r in records if r.job == job and r.config == OFF]
        for config in configs[1:]:
            runs = [r for r in records if r.job == job and r.config == config]
            if not runs or not off:
                continue
            cells = []
            ratio_of: dict[str, float] = {}
            for label, (attribute, _) in METRICS.items():
                base = median(float(getattr(r, attribute)) for r in off)
                value = median(float(getattr(r, attribute)) for r in runs)
                paired = paired_ratios(records, job, config, attribute)
                ratio_of[label] = median(paired)
                cells.append(
                    f"{median(paired):.3f}x ({_spread(paired, '.2f')}),"
                    f" {value / base if base else float('nan'):.3f}x"
                )
            lines.append(f"| {job} {JOBS[job].label} | {config} | {' | '.join(cells)} |")
            cost = 1 - ratio_of["req/s"]
            p50_paired = paired_ratios(records, job, config, "p50_ms")
            p50_noise = bool(p50_paired) and min(p50_paired) <= 1.0 <= max(p50_paired)
            scored = outcome_shares(runs)["scored"]
            verdicts.append(
                f"{job} {config}: throughput cost {100 * cost:+.1f} % "
                f"({'within' if round(100 * cost, 1) <= 5.0 else 'OVER'} the 5 % budget"
                + (
                    f", but the shadow scored only {scored:.0f} % of the rows: not its cost"
                    if scored < 95
                    else ""
                )
                + "); "
                f"p50 {ratio_of['p50 ms']:.2f}x, "
                + (
                    "paired ratios straddle 1.0"
                    if p50_noise
                    else "every paired ratio on one side of 1.0"
                )
                + f"; CPU/request {ratio_of['CPU ms/req']:.2f}x"
            )
    cores = os.cpu_count() or 1
    quiet_rows = []
    for job in jobs:
        for config in configs[1:]:
            quiet = [
                n
                for n in sorted({r.round for r in records if r.job == job})
                if all(
                    is_quiet(r, cores)
                    for r in records
                    if r.job == job and r.round == n and r.config in (OFF, config)
                )
            ]
            all_rounds = {r.round for r in records if r.job == job and r.config == config}
            if not quiet or set(quiet) >= all_rounds:
                continue  # none quiet, or all: the table above says it
            cells = [
                f"{median(p):.3f}x ({_spread(p, '.2f')})"
                for p in (
                    paired_ratios(records, job, config, attribute, quiet)
                    for attribute, _ in METRICS.values()
                )
            ]
            quiet_rows.append(
                f"| {job} {JOBS[job].label} | {config} | {len(quiet)} | {' | '.join(cells)} |"
            )
    if quiet_rows:
        lines += [
            "",
            f"The same, quiet rounds only (everything else below {QUIET_SHARE:.0%} of the"
            " machine's CPU during both runs of the pair):",
            "",
            "| run | config | rounds | req/s | p50 | p99 | server CPU/req |",
            "|---|---|--:|--:|--:|--:|--:|",
            *quiet_rows,
        ]
    lines += [
        "",
        "Where the server CPU goes, per request (medians): the model calls (wall time, from"
        " delivery_eta_model_inference_seconds{role}), the niced shadow threads (CPU), and what"
        " the server spent beyond off.",
        "",
        "| run | config | champion model ms | rows per champion call | challenger model ms"
        " | rows per challenger call | shadow thread CPU ms | server CPU beyond off ms |",
        "|---|---|--:|--:|--:|--:|--:|--:|",
    ]
    for job in jobs:
        off_cpu = median(r.cpu_ms_per_request for r in records if r.job == job and r.config == OFF)
        for config in configs:
            runs = [r for r in records if r.job == job and r.config == config]
            if not runs:
                continue
            is_off = config == OFF
            cells = [
                f"{median(r.model_ms_per_request('champion') for r in runs):.3f}",
                f"{median(r.rows_per_call('champion') for r in runs):.0f}",
            ]
            if is_off:
                cells += ["-", "-", "-", "-"]
            else:
                cells += [
                    f"{median(r.model_ms_per_request('challenger') for r in runs):.3f}",
                    f"{median(r.rows_per_call('challenger') for r in runs):.0f}",
                    "-"
                    if config == "on-nice0"  # its threads are not told apart by their nice
                    else f"{median(1000 * r.shadow_thread_cpu_s / max(r.requests, 1) for r in runs):.3f}",
                    f"{median(r.cpu_ms_per_request for r in runs) - off_cpu:+.3f}",
                ]
            lines.append(f"| {job} {JOBS[job].label} | {config} | {' | '.join(cells)} |")
    other = [r.other_cpu_s for r in records]
    duration = max((r.requests / r.rps for r in records if r.rps), default=0.0)
    lines += [
        "",
        f"Shadow fraction {fraction}. CPU of everything else on the machine during a run"
        f" (other suites, ...): median {median(other):.1f} s, max {max(other, default=0):.1f} s"
        f" per ~{duration:.0f} s run (2 cores = {2 * duration:.0f} CPU-s).",
        "",
        *verdicts,
    ]
    return lines


def render(result: Mapping[str, Any]) -> list[str]:
    """The whole printout of a run from its ``runs.json`` content."""
    records = [
        RunRecord(**{**run, "counters": ShadowCounters(**run["counters"])})
        for run in result["runs"]
    ]
    return [
        "",
        *result["header"],
        "",
        *report(records, result["configs"], result["fraction"]),
        "",
        f"reproduce: {result['command']}",
    ]
