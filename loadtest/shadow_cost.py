"""What shadow inference costs the client: the same service with the shadow off and on, alternated.

    python loadtest/shadow_cost.py                       # trains two small models on first use
    python loadtest/shadow_cost.py --configs off,on,on-nice0 --rounds 5 --duration 8
    python loadtest/shadow_cost.py --store ~/bentoml --model-tag <champion> --challenger-tag <tag>

One checkout, one champion model, two or three servers side by side on free loopback ports,
each with a private BENTOML_HOME and prediction log:

    off       no challenger
    on        DELIVERY_ETA_SHADOW_MODEL_TAG=<challenger>, DELIVERY_ETA_SHADOW_FRACTION (1.0)
    on-nice0  the same with DELIVERY_ETA_SHADOW_NICE=0: does the shadow thread's nice matter?

Each round runs wrk for single-row predictions at 64 connections and 1000-row batches at 8, the
servers in alternating order (A B, then B A). Per run: req/s, p50, p99, non-2xx, server CPU-ms
per request (the process tree, from /proc), the CPU of the niced shadow threads, and from each
server's /metrics the shadow's rows by outcome and the model calls by role over the run -- so
the table shows the shadow did score the rows while it was measured (a shadow that dropped
them all would be a free, fake win). Medians, on/off ratios with the spread of the per-round
paired ratios, and the command line that reproduces the run print at the end; ``runs.json``
and the server logs stay in ``--out``.

Without ``--model-tag`` the models come from a store of the benchmark's own (``<out>/store``,
two ``TrainingConfig.small`` models trained on first use), so the user's store keeps its
``latest`` and ``candidate``.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from loadtest.bench.common import Target
from loadtest.bench.measure import BATCH_SCRIPT, SINGLE_SCRIPT
from loadtest.bench.processes import TICKS, machine_busy_ticks, tree_cpu_ticks
from loadtest.bench.wrk import parse_wrk, run_wrk
from loadtest.wrk_bodies import WrkBodies, write_wrk_bodies
from tests.harness.local_server import (
    ROOT,
    free_port,
    private_bentoml_home,
    serve_command,
    stop_process_group,
    wait_ready,
)

BATCH_ROWS = 1000


@dataclass(frozen=True)
class Job:
    """One kind of run: wrk with a Lua script, or (``script`` None) lone sequential requests."""

    path: str
    script: Path | None
    rows: int | None
    """Orders per body (a batch), or None for single orders (``WrkBodies.script_args``)."""
    connections: int
    rows_per_request: int

    @property
    def label(self) -> str:
        return f"@{self.connections}" if self.script else f"x{LONE_REQUESTS} one at a time"


JOBS = {
    "single": Job("/v1/predict", SINGLE_SCRIPT, None, 64, 1),
    "batch": Job("/v1/predict/batch", BATCH_SCRIPT, BATCH_ROWS, 8, BATCH_ROWS),
    # one client, one request at a time: the latency a lone caller sees, no queueing in it
    "lone": Job("/v1/predict", None, None, 1, 1),
}
LONE_REQUESTS = 300

OFF = "off"
CONFIG_NAMES = ("off", "on", "on-nice0")
OUTCOMES = ("scored", "not_selected", "dropped_queue_full", "dropped_overload", "failed")
ROLES = ("champion", "challenger")
DEFAULT_NICE = 10  # serving.settings.ShadowSettings.nice's default

# --------------------------------------------------------------------------- configurations


def config_env(name: str, challenger: str, fraction: float) -> dict[str, str]:
    """The shadow settings of configuration ``name`` (``off``: none)."""
    if name == OFF:
        return {}
    env = {
        "DELIVERY_ETA_SHADOW_MODEL_TAG": challenger,
        "DELIVERY_ETA_SHADOW_FRACTION": repr(fraction),
    }
    if name == "on-nice0":
        env["DELIVERY_ETA_SHADOW_NICE"] = "0"
    elif name != "on":
        raise ValueError(f"unknown configuration {name!r} (known: {', '.join(CONFIG_NAMES)})")
    return env


def parse_configs(text: str) -> list[str]:
    """``off,on[,on-nice0]``: ``off`` first (the ratios' denominator), no repeats."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in CONFIG_NAMES]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown configuration(s) {unknown}; choose from {', '.join(CONFIG_NAMES)}"
        )
    if len(set(names)) != len(names) or OFF not in names or len(names) < 2:
        raise argparse.ArgumentTypeError("need 'off' and at least one shadow configuration, once")
    return [OFF, *(n for n in names if n != OFF)]


def round_order(configs: Sequence[str], round_: int) -> list[str]:
    """A B C in even rounds, C B A in odd ones: drift over the run hits every config alike."""
    return list(configs) if round_ % 2 == 0 else list(configs)[::-1]


# --------------------------------------------------------------------------- /metrics

_SAMPLE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})?\s+(\S+)")
_LABEL = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"')


def metric_sum(text: str, name: str, **labels: str) -> float:
    """Sum of the samples called ``name`` whose labels include ``labels`` (over workers and
    every other label), from Prometheus text exposition."""
    total = 0.0
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match is None or match.group(1) != name:
            continue
        found = dict(_LABEL.findall(match.group(2) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(match.group(3))
    return total


@dataclass
class ShadowCounters:
    """The counters a run is measured by: shadow rows by outcome, model calls by role."""

    rows: dict[str, float] = field(default_factory=dict)  # outcome -> rows
    calls: dict[str, float] = field(default_factory=dict)  # role -> model calls
    call_s: dict[str, float] = field(default_factory=dict)  # role -> seconds in them

    @classmethod
    def from_metrics(cls, text: str) -> ShadowCounters:
        return cls(
            rows={
                o: metric_sum(text, "delivery_eta_shadow_rows_total", outcome=o) for o in OUTCOMES
            },
            calls={
                r: metric_sum(text, "delivery_eta_model_inference_seconds_count", role=r)
                for r in ROLES
            },
            call_s={
                r: metric_sum(text, "delivery_eta_model_inference_seconds_sum", role=r)
                for r in ROLES
            },
        )

    def minus(self, before: ShadowCounters) -> ShadowCounters:
        def sub(a: Mapping[str, float], b: Mapping[str, float]) -> dict[str, float]:
            return {k: a[k] - b.get(k, 0.0) for k in a}

        return ShadowCounters(
            sub(self.rows, before.rows),
            sub(self.calls, before.calls),
            sub(self.call_s, before.call_s),
        )


def scrape(url: str) -> ShadowCounters:
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
        return ShadowCounters.from_metrics(response.read().decode())


# --------------------------------------------------------------------------- /proc


def niced_thread_ticks(root_pid: int) -> int:
    """CPU ticks so far of the threads with a positive nice in ``root_pid``'s process tree:
    the shadow threads (serving/pipeline/shadow.py renices them; nothing else in a worker
    does). 0 when the shadow runs at nice 0."""
    parents: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                raw = Path(entry.path, "stat").read_text()
                parents[int(entry.name)] = int(raw[raw.rindex(")") + 2 :].split()[1])
    tree, todo = [], [root_pid]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(p for p, ppid in parents.items() if ppid == pid)
    ticks = 0
    for pid in tree:
        with contextlib.suppress(OSError):
            for task in os.scandir(f"/proc/{pid}/task"):
                with contextlib.suppress(OSError):
                    raw = Path(task.path, "stat").read_text()
                    fields = raw[raw.rindex(")") + 2 :].split()
                    # fields[0] is field 3 (state): utime 14, stime 15, nice 19
                    if int(fields[16]) > 0:
                        ticks += int(fields[11]) + int(fields[12])
    return ticks


# --------------------------------------------------------------------------- one run


@dataclass
class RunRecord:
    """One wrk run against one configuration."""

    round: int
    job: str
    config: str
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int
    server_cpu_s: float
    other_cpu_s: float  # the machine's busy CPU that was neither this server nor wrk
    shadow_thread_cpu_s: float
    counters: ShadowCounters

    @property
    def cpu_ms_per_request(self) -> float:
        return 1000 * self.server_cpu_s / max(self.requests, 1)

    @property
    def rows(self) -> int:
        return self.requests * JOBS[self.job].rows_per_request

    @property
    def shadow_rows(self) -> float:
        """Rows the server predicted during the run, by the shadow's count (every predicted
        row gets exactly one outcome; wrk's count misses the requests it left in flight)."""
        return sum(self.counters.rows.values())

    def rows_per_call(self, role: str) -> float:
        """Rows per model call of ``role`` (the champion's: every answered row; the
        challenger's: the rows it scored)."""
        calls = self.counters.calls.get(role, 0.0)
        rows = self.rows if role == "champion" else self.counters.rows.get("scored", 0.0)
        return rows / calls if calls else float("nan")

    def model_ms_per_request(self, role: str) -> float:
        return 1000 * self.counters.call_s.get(role, 0.0) / max(self.requests, 1)


def measure(
    round_: int,
    job_name: str,
    config: str,
    target: Target,
    duration_s: int,
    settle_s: float,
    bodies: WrkBodies,
) -> RunRecord:
    """One run of ``job_name`` against ``target``, with ``bodies`` (the served contract's)."""
    job = JOBS[job_name]
    before = scrape(target.url)
    niced_before = niced_thread_ticks(target.pid)
    if job.script is None:
        return _measure_lone(round_, config, target, before, niced_before, settle_s, bodies.probe)
    measured = run_wrk(
        target,
        path=job.path,
        script=job.script,
        script_args=bodies.script_args(job.rows),
        connections=job.connections,
        duration_s=duration_s,
        threads=2,
    )
    niced = (niced_thread_ticks(target.pid) - niced_before) / TICKS
    time.sleep(settle_s)  # the shadow scores what is queued every 50 ms: let the last go out
    counters = scrape(target.url).minus(before)
    wrk = parse_wrk(measured.stdout)
    return RunRecord(
        round=round_,
        job=job_name,
        config=config,
        requests=wrk.requests,
        rps=wrk.rps,
        p50_ms=wrk.p50_ms,
        p99_ms=wrk.p99_ms,
        non_2xx=wrk.non_2xx,
        socket_errors=wrk.socket_errors,
        server_cpu_s=measured.server_cpu_s,
        other_cpu_s=max(measured.machine_cpu_s - measured.server_cpu_s - measured.wrk_cpu_s, 0.0),
        shadow_thread_cpu_s=niced,
        counters=counters,
    )


def _measure_lone(
    round_: int,
    config: str,
    target: Target,
    before: ShadowCounters,
    niced_before: int,
    settle_s: float,
    body: bytes,
) -> RunRecord:
    """``LONE_REQUESTS`` single predictions of ``body`` one after another on one keep-alive
    connection."""
    server_before, busy_before, own_before = (
        sum(tree_cpu_ticks(target.pid).values()),
        machine_busy_ticks(),
        time.process_time(),
    )
    connection = http.client.HTTPConnection("127.0.0.1", urlsplit(target.url).port, timeout=30)
    timings, failed = [], 0
    started = time.perf_counter()
    try:
        for _ in range(LONE_REQUESTS):
            sent = time.perf_counter()
            connection.request("POST", "/v1/predict", body, {"Content-Type": "application/json"})
            response = connection.getresponse()
            response.read()
            timings.append((time.perf_counter() - sent) * 1000.0)
            failed += not 200 <= response.status < 300
    finally:
        connection.close()
    wall = time.perf_counter() - started
    server_s = (sum(tree_cpu_ticks(target.pid).values()) - server_before) / TICKS
    busy_s = (machine_busy_ticks() - busy_before) / TICKS
    own_s = time.process_time() - own_before
    niced = (niced_thread_ticks(target.pid) - niced_before) / TICKS
    time.sleep(settle_s)
    counters = scrape(target.url).minus(before)
    timings.sort()
    return RunRecord(
        round=round_,
        job="lone",
        config=config,
        requests=len(timings),
        rps=len(timings) / wall,
        p50_ms=statistics.median(timings),
        p99_ms=timings[min(len(timings) - 1, int(0.99 * len(timings)))],
        non_2xx=failed,
        socket_errors=0,
        server_cpu_s=server_s,
        other_cpu_s=max(busy_s - server_s - own_s, 0.0),
        shadow_thread_cpu_s=niced,
        counters=counters,
    )


def run_line(r: RunRecord) -> str:
    line = (
        f"round {r.round} {r.job:6} {r.config:8} req/s {r.rps:7.0f}  p50 {r.p50_ms:6.1f}"
        f"  p99 {r.p99_ms:6.1f} ms  CPU {r.cpu_ms_per_request:6.3f} ms/req"
        f"  non-2xx {r.non_2xx}  other CPU {r.other_cpu_s:5.1f} s"
    )
    if r.config != OFF:
        rows = r.counters.rows
        line += (
            f"  shadow scored {rows.get('scored', 0):.0f}/{r.shadow_rows:.0f} rows"
            f" (dropped q {rows.get('dropped_queue_full', 0):.0f},"
            f" ovl {rows.get('dropped_overload', 0):.0f}, failed {rows.get('failed', 0):.0f})"
            f"  niced CPU {1000 * r.shadow_thread_cpu_s / max(r.requests, 1):.3f} ms/req"
        )
    return line


# --------------------------------------------------------------------------- report


def _median(values: Iterable[float]) -> float:
    values = list(values)
    return statistics.median(values) if values else float("nan")


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
                cells.append(f"{format(_median(values), fmt)} ({_spread(values, fmt)})")
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
                base = _median(float(getattr(r, attribute)) for r in off)
                value = _median(float(getattr(r, attribute)) for r in runs)
                paired = paired_ratios(records, job, config, attribute)
                ratio_of[label] = _median(paired)
                cells.append(
                    f"{_median(paired):.3f}x ({_spread(paired, '.2f')}),"
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
                f"{_median(p):.3f}x ({_spread(p, '.2f')})"
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
        off_cpu = _median(r.cpu_ms_per_request for r in records if r.job == job and r.config == OFF)
        for config in configs:
            runs = [r for r in records if r.job == job and r.config == config]
            if not runs:
                continue
            is_off = config == OFF
            cells = [
                f"{_median(r.model_ms_per_request('champion') for r in runs):.3f}",
                f"{_median(r.rows_per_call('champion') for r in runs):.0f}",
            ]
            if is_off:
                cells += ["-", "-", "-", "-"]
            else:
                cells += [
                    f"{_median(r.model_ms_per_request('challenger') for r in runs):.3f}",
                    f"{_median(r.rows_per_call('challenger') for r in runs):.0f}",
                    "-"
                    if config == "on-nice0"  # its threads are not told apart by their nice
                    else f"{_median(1000 * r.shadow_thread_cpu_s / max(r.requests, 1) for r in runs):.3f}",
                    f"{_median(r.cpu_ms_per_request for r in runs) - off_cpu:+.3f}",
                ]
            lines.append(f"| {job} {JOBS[job].label} | {config} | {' | '.join(cells)} |")
    other = [r.other_cpu_s for r in records]
    duration = max((r.requests / r.rps for r in records if r.rps), default=0.0)
    lines += [
        "",
        f"Shadow fraction {fraction}. CPU of everything else on the machine during a run"
        f" (other suites, ...): median {_median(other):.1f} s, max {max(other, default=0):.1f} s"
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


# --------------------------------------------------------------------------- models


TRAIN_SNIPPET = """
import json, sys
from models.training.config import TrainingConfig
from models.training.release import train_and_register
tags = [train_and_register(TrainingConfig.small(seed=s), stage=st).tag
        for s, st in ((7, "production"), (8, "candidate"))]
json.dump(tags, sys.stdout)
"""


def own_models(store: Path) -> tuple[str, str]:
    """(champion, challenger) from the benchmark's own store, trained into it on first use."""
    tags_file = store / "shadow-cost-tags.json"
    if tags_file.exists():
        champion, challenger = json.loads(tags_file.read_text())
        if all(
            (store / "models" / "delivery_eta" / t.split(":")[1]).is_dir()
            for t in (champion, challenger)
        ):
            return champion, challenger
    store.mkdir(parents=True, exist_ok=True)
    print(f"training two small models into {store} (once) ...", flush=True)
    done = subprocess.run(
        [sys.executable, "-c", TRAIN_SNIPPET],
        cwd=ROOT,
        env={**os.environ, "BENTOML_HOME": str(store)},
        capture_output=True,
        text=True,
        check=True,
    )
    champion, challenger = json.loads(done.stdout.strip().splitlines()[-1])
    tags_file.write_text(json.dumps([champion, challenger]))
    return champion, challenger


def git_revision() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        return "unknown"
    return f"{head}{' (uncommitted changes)' if dirty else ''}"


# --------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join((__doc__ or "").splitlines()[2:]),
    )
    parser.add_argument(
        "--configs",
        type=parse_configs,
        default=parse_configs("off,on"),
        help="servers to compare, of off,on,on-nice0 (default off,on)",
    )
    parser.add_argument("--fraction", type=float, default=1.0, help="shadow fraction when on")
    parser.add_argument("--model-tag", help="champion (all servers); needs --challenger-tag")
    parser.add_argument("--challenger-tag", help="the shadow's challenger")
    parser.add_argument(
        "--store",
        type=Path,
        help="BENTOML_HOME holding the models (default: $BENTOML_HOME or ~/bentoml with"
        " --model-tag, else <out>/store, trained on first use)",
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=int, default=8, help="seconds per wrk run")
    parser.add_argument("--warmup", type=int, default=3, help="seconds of each job per server")
    parser.add_argument(
        "--jobs",
        default="single,batch,lone",
        help="of single (wrk @64), batch (wrk 1000 rows @8), lone (sequential requests)",
    )
    parser.add_argument("--out", type=Path, default=Path("/tmp/shadow-cost"))
    parser.add_argument(
        "--from-json", type=Path, help="print the report of an earlier run's runs.json, and stop"
    )
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if (args.model_tag is None) != (args.challenger_tag is None):
        parser.error("--model-tag and --challenger-tag go together")
    if not 0 < args.fraction <= 1:
        parser.error("--fraction must be in (0, 1]")
    args.jobs = [j.strip() for j in args.jobs.split(",") if j.strip()]
    if not args.jobs or any(j not in JOBS for j in args.jobs):
        parser.error(f"--jobs: choose from {', '.join(JOBS)}")
    return args


def reproduce_command(args: argparse.Namespace, store: Path, champion: str, challenger: str) -> str:
    words = [
        ".venv/bin/python",
        "loadtest/shadow_cost.py",
        "--configs",
        ",".join(args.configs),
        "--fraction",
        str(args.fraction),
        "--rounds",
        str(args.rounds),
        "--duration",
        str(args.duration),
        "--workers",
        str(args.workers),
        "--jobs",
        ",".join(args.jobs),
        "--store",
        str(store),
        "--model-tag",
        champion,
        "--challenger-tag",
        challenger,
    ]
    return shlex.join(words)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if args.from_json is not None:
        print("\n".join(render(json.loads(args.from_json.read_text()))))
        return
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: make system-deps")
    args.out.mkdir(parents=True, exist_ok=True)
    if args.model_tag:
        store = (args.store or Path(os.environ.get("BENTOML_HOME", "~/bentoml"))).expanduser()
        champion, challenger = args.model_tag, args.challenger_tag
    else:
        store = (args.store or args.out / "store").expanduser()
        champion, challenger = own_models(store.resolve())
    store = store.resolve()
    # private_bentoml_home links each server's home to this store's models
    os.environ["BENTOML_HOME"] = str(store)

    procs: dict[str, subprocess.Popen[bytes]] = {}
    targets: dict[str, Target] = {}
    records: list[RunRecord] = []
    started_at = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    try:
        for name in args.configs:
            home = args.out / f"home-{name}"
            shutil.rmtree(home, ignore_errors=True)  # a stale link to another store, old metrics
            log_path = args.out / f"log-{name}.sqlite3"
            for stale in args.out.glob(f"log-{name}.sqlite3*"):
                stale.unlink()
            port = free_port()
            env = {k: v for k, v in os.environ.items() if not k.startswith("DELIVERY_ETA_SHADOW")}
            env |= {
                "BENTOML_HOME": str(private_bentoml_home(home)),
                "DELIVERY_ETA_MODEL_TAG": champion,
                "DELIVERY_ETA_WORKERS": str(args.workers),
                "DELIVERY_ETA_SHUTDOWN_DRAIN_S": "0",
                "DELIVERY_ETA_PREDICTION_LOG_PATH": str(log_path),
                "DELIVERY_ETA_METRICS_CACHE_S": "0",  # scraped around each run: no cached page
                **config_env(name, challenger, args.fraction),
            }
            with open(args.out / f"server-{name}.log", "wb") as log:
                procs[name] = subprocess.Popen(
                    serve_command(port),
                    cwd=ROOT,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            targets[name] = Target(
                name, "service", args.workers, f"http://127.0.0.1:{port}", procs[name].pid
            )
        for target in targets.values():
            wait_ready(target.url, 180, procs[target.name])
        print(f"servers ready: {', '.join(f'{n} {t.url}' for n, t in targets.items())}", flush=True)
        # The same bodies for every configuration: the champion's served contract.
        bodies = write_wrk_bodies(
            next(iter(targets.values())).url, args.out / "bodies", [BATCH_ROWS]
        )
        # warm-up (first batches, allocator, caches), which also proves the shadow is on
        for name, target in targets.items():
            for job in args.jobs:
                warm = measure(-1, job, name, target, args.warmup, 0.3, bodies)
                if name != OFF and warm.counters.rows.get("scored", 0.0) <= 0:
                    raise RuntimeError(
                        f"{name}: the challenger scored no rows during warm-up "
                        f"({warm.counters.rows}); see {args.out}/server-{name}.log"
                    )
        for name in targets:
            text = (args.out / f"server-{name}.log").read_text(errors="replace")
            if "keeps normal priority" in text:
                print(f"NOTE {name}: the shadow thread could not be reniced (see its log)")
        for round_ in range(args.rounds):
            for job in args.jobs:
                for name in round_order(args.configs, round_):
                    record = measure(round_, job, name, targets[name], args.duration, 0.3, bodies)
                    records.append(record)
                    print(run_line(record), flush=True)
    finally:
        for proc in procs.values():
            stop_process_group(proc)

    command = reproduce_command(args, store, champion, challenger)
    result = {
        "header": [
            f"shadow cost at {git_revision()}, {started_at}, {os.cpu_count()} cores,"
            f" {args.workers} workers per server, {args.rounds} rounds x {args.duration} s",
            f"champion {champion}, challenger {challenger}",
        ],
        "configs": args.configs,
        "fraction": args.fraction,
        "command": command,
        "runs": [asdict(r) for r in records],
    }
    (args.out / "runs.json").write_text(json.dumps(result, indent=1))
    text = "\n".join(render(result))
    (args.out / "report.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
