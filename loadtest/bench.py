"""Side-by-side benchmark, in one run on this machine: BentoML service vs a plain FastAPI app.

Starts, on free loopback ports, (a) the BentoML service, (b) the plain reference
(``loadtest/reference_app.py``: FastAPI + uvicorn, one model call per request) and (c) the
BentoML service with adaptive batching off (``DELIVERY_ETA_MAX_BATCH_SIZE=1``), all with the same
worker count. Then it drives them with ``wrk`` in alternating order (A/B/C, then C/B/A, ...) so
slow drift of a noisy machine hits every target alike, and prints medians over the rounds:

- single-row ``/v1/predict``: requests/s, p50, p99, non-2xx at each connection count;
- ``/v1/predict/batch``: rows/s for batches of each size (service only);
- CPU shares while each run lasted: wrk, the target's processes, everything else on the box.

    python loadtest/bench.py --workers 2 --duration 10 --rounds 2

Results (table, every run, server logs) go to ``--out`` (default loadtest/results/bench-<time>).
Figures are measurements, not a test: the exit code is 0 unless something failed to run
(``--strict`` makes a missed target exit 1).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import importlib.util
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from loadtest.local_server import ROOT, free_port, local_server, stop_process_group, wait_ready

SINGLE_SCRIPT = ROOT / "loadtest" / "predict.lua"
BATCH_SCRIPT = ROOT / "loadtest" / "bench.lua"
TICKS = os.sysconf("SC_CLK_TCK")
CORES = os.cpu_count() or 1

BENTO, REFERENCE, NO_BATCH, VARIANT = "bentoml", "reference", "bentoml-nobatch", "variant"
LABELS = {
    BENTO: "BentoML (batching on)",
    REFERENCE: "plain FastAPI",
    NO_BATCH: "BentoML batching off",
    VARIANT: "BentoML variant",  # set from --variant
}
SHORT = {REFERENCE: "plain", NO_BATCH: "off", VARIANT: "variant"}

# Targets of issue 5 (benchmark figures, printed as met / missed).
TARGET_RATIO_64 = 2.0
TARGET_P99_64_MS = 50.0
TARGET_BATCH_ROWS_S = 100_000


# --------------------------------------------------------------------------- wrk output


_UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def to_ms(text: str) -> float:
    """wrk's duration text (``812.00us``, ``4.21ms``, ``1.34s``, ``2.00m``) in milliseconds."""
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text.strip())
    if not match:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(match.group(1)) * _UNITS_MS[match.group(2)]


@dataclass
class WrkResult:
    """What one wrk run reports."""

    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int


def parse_wrk(out: str) -> WrkResult:
    """Parse ``wrk --latency`` output."""

    def grab(pattern: str) -> str:
        match = re.search(pattern, out)
        if not match:
            raise ValueError(f"wrk output has no {pattern!r}:\n{out}")
        return match.group(1)

    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return WrkResult(
        requests=int(grab(r"(\d+) requests in")),
        rps=float(grab(r"Requests/sec:\s+([\d.]+)")),
        p50_ms=to_ms(grab(r"\s50%\s+(\S+)")),
        p99_ms=to_ms(grab(r"\s99%\s+(\S+)")),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(g) for g in socket.groups()) if socket else 0,
    )


# --------------------------------------------------------------------------- CPU accounting


def _proc_stats() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, utime + stime in ticks) for every process we can read."""
    stats: dict[int, tuple[int, int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            raw = Path(entry.path, "stat").read_text()
            fields = raw[raw.rindex(")") + 2 :].split()
            stats[int(entry.name)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
    return stats


def tree_cpu_ticks(root_pid: int) -> dict[int, int]:
    """pid -> CPU ticks used so far, for ``root_pid`` and all its live descendants (workers
    included: BentoML's workers start their own sessions, so the process tree ties them)."""
    stats = _proc_stats()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    ticks: dict[int, int] = {}
    todo = [root_pid]
    while todo:
        pid = todo.pop()
        if pid in stats:
            ticks[pid] = stats[pid][1]
        todo.extend(children.get(pid, ()))
    return ticks


def machine_busy_ticks() -> int:
    """Busy CPU ticks of the whole machine so far (all cores; idle and iowait excluded)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return sum(values) - values[3] - values[4]


def children_cpu_s() -> float:
    """CPU seconds of reaped children of this process (wrk, once it has exited)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# --------------------------------------------------------------------------- servers


@dataclass
class Target:
    """A server under test."""

    name: str
    url: str
    pid: int


@contextlib.contextmanager
def reference_server(log_path: Path, workers: int, env: dict[str, str]) -> Iterator[Target]:
    """``uvicorn loadtest.reference_app:app`` on a free loopback port until the block ends."""
    port = free_port()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "loadtest.reference_app:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                str(workers),
                "--no-access-log",
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **env},
        )
        try:
            url = f"http://127.0.0.1:{port}"
            wait_ready(url, 90, proc)
            yield Target(REFERENCE, url, proc.pid)
        finally:
            stop_process_group(proc)


def private_home(folder: Path) -> str:
    """A BENTOML_HOME of its own for one server, sharing the real model store.

    ``bentoml serve`` empties ``$BENTOML_HOME/prometheus_multiproc_dir`` when it starts, so
    two servers on one home would read each other's metrics (and lose their own)."""
    store = Path(os.environ.get("BENTOML_HOME", Path.home() / "bentoml")).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    link = folder / "models"
    if not link.exists():
        link.symlink_to((store / "models").resolve(), target_is_directory=True)
    return str(folder)


def source_state() -> str:
    """Commit and locally modified files: what code the servers ran."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.split("\n")
    except OSError:
        return "unknown (no git)"
    changed = sorted(line[3:] for line in dirty if line.strip())
    return commit + (f" + uncommitted changes to {', '.join(changed)}" if changed else "")


def model_version(url: str) -> str:
    with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
        return str(json.load(response)["model_version"])


# --------------------------------------------------------------------------- runs


@dataclass
class Run:
    """One wrk run against one target, with the CPU it and everything else used meanwhile."""

    kind: str  # "single" or "batch"
    target: str
    connections: int
    rows: int  # orders per request
    round: int
    wall_s: float
    result: WrkResult
    wrk_cpu_s: float
    server_cpu_s: float
    machine_cpu_s: float
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def rows_per_s(self) -> float:
        return self.result.rps * self.rows

    def share(self, cpu_s: float) -> float:
        """CPU seconds as a fraction of the machine's capacity during the run."""
        return cpu_s / (self.wall_s * CORES) if self.wall_s else 0.0

    @property
    def other_cpu_s(self) -> float:
        return max(self.machine_cpu_s - self.wrk_cpu_s - self.server_cpu_s, 0.0)


@dataclass
class Measured:
    """One wrk run's output and the CPU it, the target and the whole machine used meanwhile."""

    stdout: str
    wall_s: float
    wrk_cpu_s: float
    server_cpu_s: float
    machine_cpu_s: float
    process_cpu_s: list[float]  # per target process (server parent and workers), busiest first


def run_wrk(
    target: Target,
    *,
    path: str,
    script: Path,
    script_args: Sequence[str],
    connections: int,
    duration_s: int,
    threads: int,
) -> Measured:
    """Run wrk once against ``target``."""
    command = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration_s}s",
        "--timeout",
        "30s",
        "--latency",
        "-s",
        str(script),
        f"{target.url}{path}",
    ]
    if script_args:
        command += ["--", *script_args]
    wrk_before, server_before, busy_before = (
        children_cpu_s(),
        tree_cpu_ticks(target.pid),
        machine_busy_ticks(),
    )
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, timeout=duration_s + 120)
    wall = time.monotonic() - started
    wrk_cpu = children_cpu_s() - wrk_before
    server_after = tree_cpu_ticks(target.pid)
    busy = (machine_busy_ticks() - busy_before) / TICKS
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip()}")
    per_process = sorted(
        ((ticks - server_before.get(pid, 0)) / TICKS for pid, ticks in server_after.items()),
        reverse=True,
    )
    return Measured(done.stdout, wall, wrk_cpu, sum(per_process), busy, per_process)


PROBE_ORDER = json.dumps(
    {
        "restaurant_id": "r_0042",
        "driver_id": "d_0117",
        "distance_km": 3.2,
        "is_peak_hour": 1,
        "order_value": 27.5,
    }
).encode()


def sequential_p50_ms(url: str, requests: int = 60) -> float:
    """Median latency of one-at-a-time predictions on one keep-alive connection: what a
    lone client sees when nothing else is queued."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    timings = []
    try:
        for _ in range(requests):
            started = time.perf_counter()
            connection.request(
                "POST", "/v1/predict", PROBE_ORDER, {"Content-Type": "application/json"}
            )
            response = connection.getresponse()
            response.read()
            timings.append((time.perf_counter() - started) * 1000.0)
    finally:
        connection.close()
    return statistics.median(timings)


def batch_metrics(url: str) -> tuple[float, float]:
    """(model batches, requests in them) summed over workers, from /metrics."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
        text = response.read().decode()
    batches = requests = 0.0
    for line in text.splitlines():
        if line.startswith("bentoml_service_adaptive_batch_size_count"):
            batches += float(line.rsplit(" ", 1)[1])
        elif line.startswith("bentoml_service_adaptive_batch_size_sum"):
            requests += float(line.rsplit(" ", 1)[1])
    return batches, requests


# --------------------------------------------------------------------------- table


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

    def med(self, metric: Callable[[Run], float], *key: object) -> float:
        return median([metric(r) for r in self.select(*key)])  # type: ignore[arg-type]


def render(
    summary: Summary,
    connections: Sequence[int],
    batch_rows: Sequence[int],
    batch_connections: int,
    header: str,
    idle: dict[str, dict[str, float]] | None = None,
) -> tuple[str, list[str]]:
    """Markdown tables plus the issue's targets as met/missed lines.

    The service (batching on) comes first; every other target that ran gets its own column and
    a ratio column "BentoML ÷ it" (for latencies, below 1 means the service is faster).
    """
    rps = lambda r: r.result.rps  # noqa: E731
    p50 = lambda r: r.result.p50_ms  # noqa: E731
    p99 = lambda r: r.result.p99_ms  # noqa: E731
    bad = lambda r: float(r.result.non_2xx + r.result.socket_errors)  # noqa: E731
    ran = {r.target for r in summary.runs}
    others = [t for t in (REFERENCE, NO_BATCH, VARIANT) if t in ran]
    lines = [header, ""]
    lines += [
        f"| single-row `/v1/predict` | {LABELS[BENTO]} | "
        + " | ".join(f"{LABELS[t]} | BentoML ÷ {SHORT[t]}" for t in others)
        + " |",
        "|---|--:|" + "--:|--:|" * len(others),
    ]

    def cells(kind: str, conns: int, metric: Callable[[Run], float], unit: str) -> str:
        a = summary.med(metric, kind, BENTO, conns)
        out = [_fmt(a, unit)]
        for t in others:
            b = summary.med(metric, kind, t, conns)
            out += [_fmt(b, unit), "—" if unit == "int" else _ratio(a, b)]
        return " | ".join(out)

    for conns in connections:
        for name, metric, unit in (
            ("requests/s", rps, ""),
            ("p50", p50, "ms"),
            ("p99", p99, "ms"),
            ("non-2xx + socket errors", bad, "int"),
        ):
            lines.append(f"| {name} @ {conns} conns | {cells('single', conns, metric, unit)} |")
    cold = [r for r in summary.runs if r.kind == "cold"]
    if cold:
        seconds = round(cold[0].wall_s)
        for name, metric, unit in (("requests/s", rps, ""), ("p99", p99, "ms")):
            lines.append(
                f"| cold start: {name} in the first {seconds} s after ready (64 conns) "
                f"| {cells('cold', 64, metric, unit)} |"
            )
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
    lines += [
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
                f"| {label} | {_fmt(summary.med(rps, *key))} "
                f"| {_fmt(summary.med(lambda r: r.rows_per_s, *key))} "
                f"| {_fmt(summary.med(p50, *key), 'ms')} | {_fmt(summary.med(p99, *key), 'ms')} "
                f"| {_fmt(summary.med(bad, *key), 'int')} |"
            )

    lines += [
        "",
        "| CPU share of the machine (median over runs) | wrk (load generator) | target server "
        "| everything else | wrk ÷ (wrk + server) |",
        "|---|--:|--:|--:|--:|",
    ]
    groups: list[tuple[str, list[Run]]] = [
        (f"single @ {c} conns → {LABELS[t]}", summary.select("single", t, c))
        for c in connections
        for t in (BENTO, *others)
    ] + [
        (
            f"batch {rows} rows → {LABELS[t]}",
            summary.select("batch", t, batch_connections, rows),
        )
        for t in (BENTO, VARIANT)
        for rows in batch_rows
    ]
    for label, runs in groups:
        if not runs:
            continue
        wrk = median([r.share(r.wrk_cpu_s) for r in runs])
        srv = median([r.share(r.server_cpu_s) for r in runs])
        other = median([r.share(r.other_cpu_s) for r in runs])
        gen = median([r.wrk_cpu_s / max(r.wrk_cpu_s + r.server_cpu_s, 1e-9) for r in runs])
        lines.append(f"| {label} | {wrk:.0%} | {srv:.0%} | {other:.0%} | {gen:.0%} |")

    verdicts: list[str] = []
    if connections:
        c0 = 64 if 64 in connections else connections[0]
        if REFERENCE in ran:
            a = summary.med(rps, "single", BENTO, c0)
            b = summary.med(rps, "single", REFERENCE, c0)
            ratio = a / b if b else float("nan")
            verdicts.append(
                f"{'MET   ' if ratio >= TARGET_RATIO_64 else 'MISSED'} single-row RPS @ {c0} "
                f"conns >= {TARGET_RATIO_64:.0f}x plain: {ratio:.2f}x"
            )
        bad0 = summary.med(bad, "single", BENTO, c0)
        p990 = summary.med(p99, "single", BENTO, c0)
        verdicts.append(f"{'MET   ' if bad0 == 0 else 'MISSED'} 0 non-2xx @ {c0} conns: {bad0:.0f}")
        verdicts.append(
            f"{'MET   ' if p990 <= TARGET_P99_64_MS else 'MISSED'} p99 @ {c0} conns "
            f"<= {TARGET_P99_64_MS:.0f} ms: {p990:.1f} ms"
        )
        for conns in connections:
            if conns == c0:
                continue
            worst = max((bad(r) for r in summary.select("single", BENTO, conns)), default=0.0)
            verdicts.append(
                f"{'MET   ' if worst == 0 else 'MISSED'} 0 non-2xx @ {conns} conns "
                f"(worst round): {worst:.0f}"
            )
    if batch_rows:
        best = max(
            (
                summary.med(lambda r: r.rows_per_s, "batch", BENTO, batch_connections, n)
                for n in batch_rows
            ),
            default=0.0,
        )
        verdicts.append(
            f"{'MET   ' if best >= TARGET_BATCH_ROWS_S else 'MISSED'} batch endpoint "
            f">= {TARGET_BATCH_ROWS_S:,} rows/s: {best:,.0f}"
        )
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


# --------------------------------------------------------------------------- main


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    env = os.environ.get
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workers", type=int, default=int(env("BENCH_WORKERS", "2")))
    parser.add_argument(
        "--duration", type=int, default=int(env("BENCH_DURATION", "8")), help="s per wrk run"
    )
    parser.add_argument("--rounds", type=int, default=int(env("BENCH_ROUNDS", "3")))
    parser.add_argument(
        "--warmup",
        type=int,
        default=5,
        help="s of load per server before measuring (reported as the cold start)",
    )
    parser.add_argument(
        "--connections", type=_ints, default=_ints(env("BENCH_CONNECTIONS", "64,512"))
    )
    parser.add_argument(
        "--batch-rows", type=_ints, default=_ints(env("BENCH_BATCH_ROWS", "100,1000"))
    )
    parser.add_argument(
        "--batch-connections", type=int, default=int(env("BENCH_BATCH_CONNECTIONS", "8"))
    )
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument(
        "--targets",
        default=env("BENCH_TARGETS", f"{BENTO},{REFERENCE},{NO_BATCH}"),
        help="comma-separated subset of bentoml,reference,bentoml-nobatch",
    )
    parser.add_argument(
        "--variant",
        default=env("BENCH_VARIANT", ""),
        help="space-separated NAME=VALUE settings for a 4th server, the service with a lever "
        "changed, measured A/B against the default one (e.g. DELIVERY_ETA_MODEL_RUNTIME=sklearn)",
    )
    parser.add_argument("--out", type=Path, default=None, help="results folder")
    parser.add_argument("--strict", action="store_true", help="exit 1 if a target is missed")
    args = parser.parse_args(argv)
    args.targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    unknown = set(args.targets) - {BENTO, REFERENCE, NO_BATCH}
    if unknown or BENTO not in args.targets:
        parser.error(f"--targets must include {BENTO} and only {BENTO}, {REFERENCE}, {NO_BATCH}")
    args.variant_env = {}
    for item in args.variant.split():
        name, sep, value = item.partition("=")
        if not sep or not name:
            parser.error(f"--variant wants NAME=VALUE items, got {item!r}")
        args.variant_env[name] = value
    if args.variant_env:
        args.targets.append(VARIANT)
        LABELS[VARIANT] = "BentoML + " + " ".join(f"{k}={v}" for k, v in args.variant_env.items())
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk not found: run `make system-deps`", file=sys.stderr)
        return 2
    if REFERENCE in args.targets and importlib.util.find_spec("fastapi") is None:
        print(
            "fastapi is not installed: the plain reference needs it (dev dependency), "
            f"or leave it out with --targets {BENTO},{NO_BATCH}",
            file=sys.stderr,
        )
        return 2
    out: Path = args.out or ROOT / "loadtest" / "results" / datetime.now().strftime(
        "bench-%Y%m%d-%H%M%S"
    )
    out.mkdir(parents=True, exist_ok=True)
    single_runs = len(args.targets) * len(args.connections) * args.rounds
    batch_targets = [t for t in args.targets if t in (BENTO, VARIANT)]
    batch_runs = len(args.batch_rows) * args.rounds * len(batch_targets)
    print(
        f"bench: {len(args.targets)} servers x {args.workers} workers on {CORES} cores; "
        f"{single_runs + batch_runs} wrk runs of {args.duration} s "
        f"(~{(single_runs + batch_runs) * (args.duration + 1) + len(args.targets) * (args.warmup + 15)} s); "
        f"results in {out}",
        flush=True,
    )
    service_env = {
        "DELIVERY_ETA_WORKERS": str(args.workers),
        "DELIVERY_ETA_LOG_LEVEL": os.environ.get("DELIVERY_ETA_LOG_LEVEL", "WARNING"),
    }
    code = source_state()
    runs: list[Run] = []
    with contextlib.ExitStack() as stack:
        targets: dict[str, Target] = {}

        def service(name: str, **extra: str) -> Target:
            """One BentoML server of the service with a private store and prediction log."""
            server = stack.enter_context(
                local_server(
                    out / f"server-{name}.log",
                    env={
                        **service_env,
                        "BENTOML_HOME": private_home(out / f"home-{name}"),
                        "DELIVERY_ETA_PREDICTION_LOG_PATH": str(out / f"pl-{name}.sqlite3"),
                        **extra,
                    },
                )
            )
            return Target(name, server.url, server.proc.pid)

        targets[BENTO] = service(BENTO)
        tag = model_version(targets[BENTO].url)
        pinned = {"DELIVERY_ETA_MODEL_TAG": tag}
        if REFERENCE in args.targets:
            # Same native-thread cap the service applies to its model thread (MODEL_THREADS).
            threads = os.environ.get("DELIVERY_ETA_MODEL_THREADS", "1")
            targets[REFERENCE] = stack.enter_context(
                reference_server(
                    out / "server-reference.log",
                    args.workers,
                    {**pinned, "OMP_NUM_THREADS": threads},
                )
            )
        if NO_BATCH in args.targets:
            targets[NO_BATCH] = service(NO_BATCH, **pinned, DELIVERY_ETA_MAX_BATCH_SIZE="1")
        if VARIANT in args.targets:
            targets[VARIANT] = service(
                VARIANT, **{**pinned, **args.variant_env}
            )  # variant may re-pin
        order = [targets[t] for t in args.targets]
        print(f"model {tag}; servers: " + ", ".join(f"{t.name}={t.url}" for t in order), flush=True)

        def measure(
            kind: str, target: Target, conns: int, rows: int, rnd: int, duration: int
        ) -> Run:
            path, script, script_args = (
                ("/v1/predict", SINGLE_SCRIPT, [])
                if kind == "single"
                else ("/v1/predict/batch", BATCH_SCRIPT, [str(rows)])
            )
            has_batches = target.name != REFERENCE
            before = batch_metrics(target.url) if has_batches else (0.0, 0.0)
            measured = run_wrk(
                target,
                path=path,
                script=script,
                script_args=script_args,
                connections=conns,
                duration_s=duration,
                threads=args.threads,
            )
            wall = measured.wall_s
            extra: dict[str, float] = {
                # Share of one core used by the busiest server process, and by the next one:
                # shows whether the connections were spread over the workers.
                "busiest_process_core": measured.process_cpu_s[0] / wall,
                "second_process_core": (
                    measured.process_cpu_s[1] / wall if len(measured.process_cpu_s) > 1 else 0.0
                ),
            }
            if has_batches:
                after = batch_metrics(target.url)
                batches = after[0] - before[0]
                if batches:
                    extra["mean_requests_per_batch"] = (after[1] - before[1]) / batches
            run = Run(
                kind,
                target.name,
                conns,
                rows,
                rnd,
                wall,
                parse_wrk(measured.stdout),
                measured.wrk_cpu_s,
                measured.server_cpu_s,
                measured.machine_cpu_s,
                extra,
            )
            (out / "wrk").mkdir(exist_ok=True)
            (out / "wrk" / f"{kind}-{target.name}-c{conns}-r{rows}-{rnd}.txt").write_text(
                measured.stdout
            )
            return run

        # Warm-up, reported as the cold start: the first seconds of load after /readyz (the
        # dispatcher trains its latency model on them, caches fill, pools open).
        idle: dict[str, dict[str, float]] = {t.name: {} for t in order}
        for target in order:
            idle[target.name]["fresh"] = sequential_p50_ms(target.url)
        cold: list[Run] = []
        for target in order:
            cold.append(measure("single", target, 64, 1, 0, args.warmup))
            cold[-1].kind = "cold"
            print(
                f"  cold start {target.name:16s} first {args.warmup} s at 64 conns: "
                f"{cold[-1].result.rps:.0f} req/s, p99 {cold[-1].result.p99_ms:.0f} ms",
                flush=True,
            )
        for rnd in range(1, args.rounds + 1):
            sequence = order if rnd % 2 else list(reversed(order))
            for conns in args.connections:
                for target in sequence:
                    run = measure("single", target, conns, 1, rnd, args.duration)
                    runs.append(run)
                    print(
                        f"  round {rnd} single {target.name:16s} c={conns:<4d} "
                        f"{run.result.rps:8.0f} req/s  p50 {run.result.p50_ms:7.1f} ms  "
                        f"p99 {run.result.p99_ms:7.1f} ms  non-2xx {run.result.non_2xx}  "
                        f"wrk {run.share(run.wrk_cpu_s):.0%} server {run.share(run.server_cpu_s):.0%} "
                        f"other {run.share(run.other_cpu_s):.0%}",
                        flush=True,
                    )
            rows_order = args.batch_rows if rnd % 2 else list(reversed(args.batch_rows))
            batch_order = batch_targets if rnd % 2 else list(reversed(batch_targets))
            for rows in rows_order:
                for name in batch_order:
                    run = measure(
                        "batch", targets[name], args.batch_connections, rows, rnd, args.duration
                    )
                    runs.append(run)
                    print(
                        f"  round {rnd} batch  {name:16s} {rows:5d} rows/call "
                        f"{run.rows_per_s:8.0f} rows/s "
                        f"p50 {run.result.p50_ms:7.1f} ms  p99 {run.result.p99_ms:7.1f} ms  "
                        f"non-2xx {run.result.non_2xx}",
                        flush=True,
                    )

        # Right after the last load: a dispatcher that remembers the waits it saw under load
        # keeps lone requests waiting that long.
        for target in order:
            idle[target.name]["after load"] = sequential_p50_ms(target.url)

    # Servers are stopped: drop their prediction logs and private homes (tens of MB), keep logs.
    for leftover in [*out.glob("pl-*.sqlite3*"), *out.glob("home-*")]:
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)

    load = os.getloadavg()
    header = (
        f"Benchmark {datetime.now().isoformat(timespec='seconds')} on {CORES} cores "
        f"({os.uname().nodename}); model {tag}; {args.workers} workers per server; "
        f"median of {args.rounds} rounds x {args.duration} s per cell, alternating order; "
        f"wrk -t{args.threads}, Lua bodies; load average after: {load[0]:.2f}; "
        f"code: {code}"
    )
    table, verdicts = render(
        Summary(cold + runs),
        args.connections,
        args.batch_rows,
        args.batch_connections,
        header,
        idle,
    )
    report = "\n".join(
        [
            table,
            "",
            "Targets (issue 5):",
            *[f"  {v}" for v in verdicts],
            "",
            "All runs:",
            "",
            runs_table(cold + runs),
        ]
    )
    print("\n" + report)
    (out / "bench.md").write_text(report + "\n")
    (out / "runs.json").write_text(
        json.dumps(
            [{**asdict(r), "rows_per_s": r.rows_per_s} for r in cold + runs], indent=1, default=str
        )
    )
    print(f"\nwritten: {out / 'bench.md'}, {out / 'runs.json'}")
    missed = any(v.startswith("MISSED") for v in verdicts)
    return 1 if args.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main())
