"""Run the locust user mix against a running service and judge it against the SLO.

    python -m loadtest.slo run --host http://127.0.0.1:3000 --users 100 --spawn-rate 20 \
        --run-time 60s --results loadtest/results/20260101-120000
    python -m loadtest.slo verdict loadtest/results/20260101-120000     # judge an earlier run

``run`` refuses anything but a loopback host, checks the service answers ``/readyz``, runs locust
headless (``loadtest/locustfile.py``, optionally in several processes), writes locust's CSV files
(``locust_stats.csv`` ...) and HTML report (``report.html``) into the results folder, then prints
the verdict and writes it to ``slo.txt`` / ``slo.json`` there. Exit 0: SLO met; 1: breached;
2: could not run.

SLO, on all requests of the run (locust's ``Aggregated`` row): p50 < 50 ms, p95 < 200 ms,
p99 < 500 ms, unexpected error rate < 0.1 %. Invalid payloads the locustfile sends on purpose
(stats names starting with ``INVALID_PREFIX``) are successes when refused with a 4xx, so only
a 2xx/5xx answer to one counts as an error.
"""

from __future__ import annotations

import argparse
import csv
import ipaddress
import json
import os
import resource
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
LOCUSTFILE = Path(__file__).resolve().with_name("locustfile.py")
CSV_PREFIX = "locust"
INVALID_PREFIX = "invalid payload (expect 4xx):"
AGGREGATED = "Aggregated"


@dataclass(frozen=True)
class Slo:
    """Latency percentiles (ms, strict upper bounds) and the unexpected-error budget."""

    p50_ms: float = 50.0
    p95_ms: float = 200.0
    p99_ms: float = 500.0
    max_error_rate: float = 0.001


@dataclass(frozen=True)
class StatsRow:
    """One row of locust's ``*_stats.csv``."""

    type: str
    name: str
    requests: int
    failures: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    rps: float

    @property
    def invalid_payloads(self) -> bool:
        """Requests the locustfile sends invalid on purpose (a 4xx is their success)."""
        return self.name.startswith(INVALID_PREFIX)


@dataclass
class Verdict:
    """The judgement of one run."""

    passed: bool
    breaches: list[str]
    requests: int
    unexpected_errors: int
    error_rate: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    invalid_sent: int
    invalid_not_refused: int
    rps: float


# ----------------------------------------------------------------------------- CSV


def _number(text: str | None) -> float | None:
    if text is None or text.strip() in ("", "N/A"):
        return None
    return float(text)


def parse_stats(rows: Iterable[dict[str, str]]) -> list[StatsRow]:
    """Rows of a locust stats CSV (as ``csv.DictReader`` yields them)."""
    parsed = []
    for row in rows:
        parsed.append(
            StatsRow(
                type=row.get("Type", "") or "",
                name=row["Name"],
                requests=int(row["Request Count"]),
                failures=int(row["Failure Count"]),
                p50_ms=_number(row.get("50%")),
                p95_ms=_number(row.get("95%")),
                p99_ms=_number(row.get("99%")),
                max_ms=_number(row.get("Max Response Time")),
                rps=_number(row.get("Requests/s")) or 0.0,
            )
        )
    return parsed


def read_stats(path: Path) -> list[StatsRow]:
    """Read ``<prefix>_stats.csv``; ``path`` may be the file or the results folder."""
    if path.is_dir():
        path = path / f"{CSV_PREFIX}_stats.csv"
    with path.open(newline="") as handle:
        return parse_stats(csv.DictReader(handle))


# ----------------------------------------------------------------------------- verdict


def judge(rows: Sequence[StatsRow], slo: Slo = Slo()) -> Verdict:
    """Apply ``slo`` to a run's stats rows."""
    per_name = [r for r in rows if r.name != AGGREGATED]
    aggregated = next((r for r in rows if r.name == AGGREGATED), None)
    requests = aggregated.requests if aggregated else sum(r.requests for r in per_name)
    errors = aggregated.failures if aggregated else sum(r.failures for r in per_name)
    invalid = [r for r in per_name if r.invalid_payloads]
    breaches: list[str] = []
    if aggregated is None:
        breaches.append("no Aggregated row in the stats: cannot read percentiles")
    if requests == 0:
        breaches.append("no requests were made")
    rate = errors / requests if requests else 0.0
    if rate >= slo.max_error_rate:
        breaches.append(
            f"unexpected error rate {rate:.3%} >= {slo.max_error_rate:.1%} "
            f"({errors} of {requests} requests)"
        )
    for label, value, bound in (
        ("p50", aggregated.p50_ms if aggregated else None, slo.p50_ms),
        ("p95", aggregated.p95_ms if aggregated else None, slo.p95_ms),
        ("p99", aggregated.p99_ms if aggregated else None, slo.p99_ms),
    ):
        if requests and value is None:
            breaches.append(f"{label} missing from the stats")
        elif value is not None and value >= bound:
            breaches.append(f"{label} {value:.0f} ms >= {bound:.0f} ms")
    return Verdict(
        passed=not breaches,
        breaches=breaches,
        requests=requests,
        unexpected_errors=errors,
        error_rate=rate,
        p50_ms=aggregated.p50_ms if aggregated else None,
        p95_ms=aggregated.p95_ms if aggregated else None,
        p99_ms=aggregated.p99_ms if aggregated else None,
        invalid_sent=sum(r.requests for r in invalid),
        invalid_not_refused=sum(r.failures for r in invalid),
        rps=aggregated.rps if aggregated else sum(r.rps for r in per_name),
    )


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f} ms"


def report(rows: Sequence[StatsRow], verdict: Verdict, slo: Slo = Slo()) -> str:
    """Per-request-name table plus the verdict, as printed and saved in ``slo.txt``."""
    width = max([len(r.name) for r in rows] + [10])
    lines = [
        f"{'name':<{width}}  {'requests':>9}  {'failures':>8}  {'req/s':>7}  "
        f"{'p50':>7}  {'p95':>7}  {'p99':>7}  {'max':>7}",
    ]
    for r in rows:
        lines.append(
            f"{r.name:<{width}}  {r.requests:>9}  {r.failures:>8}  {r.rps:>7.1f}  "
            f"{_ms(r.p50_ms):>7}  {_ms(r.p95_ms):>7}  {_ms(r.p99_ms):>7}  {_ms(r.max_ms):>7}"
        )
    lines += [
        "",
        f"SLO (all requests): p50 < {slo.p50_ms:.0f} ms, p95 < {slo.p95_ms:.0f} ms, "
        f"p99 < {slo.p99_ms:.0f} ms, unexpected errors < {slo.max_error_rate:.1%}",
        f"measured:           p50 {_ms(verdict.p50_ms)}, p95 {_ms(verdict.p95_ms)}, "
        f"p99 {_ms(verdict.p99_ms)}, unexpected errors {verdict.error_rate:.3%} "
        f"({verdict.unexpected_errors} of {verdict.requests}), {verdict.rps:.1f} req/s",
        f"invalid payloads:   {verdict.invalid_sent} sent, "
        f"{verdict.invalid_sent - verdict.invalid_not_refused} refused with 4xx (counted as correct), "
        f"{verdict.invalid_not_refused} not refused (counted as errors)",
        "VERDICT: " + ("PASS" if verdict.passed else "FAIL: " + "; ".join(verdict.breaches)),
    ]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- run


def is_loopback_url(url: str) -> bool:
    """True for http(s) URLs on 127.0.0.0/8, ``localhost`` or ``[::1]``."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    if parts.hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(parts.hostname).is_loopback
    except ValueError:
        return False


def service_ready(url: str, timeout_s: float = 5.0) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=timeout_s) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _seconds(run_time: str) -> float:
    """locust's ``--run-time`` (``60``, ``60s``, ``5m``, ``1h30m``) in seconds."""
    total, number = 0.0, ""
    for char in run_time.strip():
        if char.isdigit() or char == ".":
            number += char
        else:
            total += float(number or 0) * {"s": 1, "m": 60, "h": 3600}[char]
            number = ""
    return total + float(number or 0)


def run_locust(args: argparse.Namespace) -> int:
    host = args.host.rstrip("/")
    if not is_loopback_url(host):
        print(f"refusing to load {host}: loopback hosts only", file=sys.stderr)
        return 2
    if not service_ready(host):
        print(
            f"no ready service at {host} (GET /readyz): start one first, e.g. `make serve`",
            file=sys.stderr,
        )
        return 2
    locust = shutil.which("locust", path=str(Path(sys.executable).parent)) or shutil.which("locust")
    if locust is None:
        print("locust not installed in this environment", file=sys.stderr)
        return 2
    results: Path = args.results or ROOT / "loadtest" / "results" / datetime.now().strftime(
        "%Y%m%d-%H%M%S"
    )
    results.mkdir(parents=True, exist_ok=True)
    command = [
        locust,
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "--host",
        host,
        "--users",
        str(args.users),
        "--spawn-rate",
        str(args.spawn_rate),
        "--run-time",
        args.run_time,
        "--csv",
        str(results / CSV_PREFIX),
        "--html",
        str(results / "report.html"),
        "--only-summary",
        "--exit-code-on-error",
        "0",  # failures are judged below; non-zero now means locust itself broke
        "--stop-timeout",
        "10",
        "--loglevel",
        "WARNING",
    ]
    if args.processes and args.processes != 1:
        command += ["--processes", str(args.processes)]
    print(
        f"locust: {args.users} users (spawn {args.spawn_rate}/s) for {args.run_time} against "
        f"{host}, {args.processes} process(es); results in {results}",
        flush=True,
    )
    cpu_before, started = _children_cpu_s(), time.monotonic()
    try:
        done = subprocess.run(command, cwd=ROOT, timeout=_seconds(args.run_time) + 180)
    except subprocess.TimeoutExpired:
        print("locust did not stop in time", file=sys.stderr)
        return 2
    if done.returncode != 0:
        print(f"locust exited with {done.returncode}", file=sys.stderr)
        return 2
    cpu, wall = _children_cpu_s() - cpu_before, time.monotonic() - started
    generator = (
        f"load generator: locust used {cpu:.1f} CPU s in {wall:.0f} s "
        f"({cpu / wall:.0%} of one core, {cpu / wall / (os.cpu_count() or 1):.0%} of the machine)"
    )
    print(generator)
    (results / "generator.txt").write_text(generator + "\n")
    return print_verdict(results, Slo())


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def print_verdict(path: Path, slo: Slo) -> int:
    rows = read_stats(path)
    verdict = judge(rows, slo)
    text = report(rows, verdict, slo)
    print(text)
    folder = path if path.is_dir() else path.parent
    (folder / "slo.txt").write_text(text + "\n")
    (folder / "slo.json").write_text(
        json.dumps({"slo": asdict(slo), "verdict": asdict(verdict)}, indent=1) + "\n"
    )
    return 0 if verdict.passed else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run locust headless, then judge")
    run.add_argument("--host", default="http://127.0.0.1:3000")
    run.add_argument("--users", type=int, default=100)
    run.add_argument("--spawn-rate", type=float, default=20)
    run.add_argument("--run-time", default="60s")
    run.add_argument("--results", type=Path, default=None)
    run.add_argument("--processes", type=int, default=1, help="locust processes (-1: one per core)")
    check = commands.add_parser("verdict", help="judge an earlier run's CSV")
    check.add_argument("path", type=Path, help="results folder or locust_stats.csv")
    args = parser.parse_args(argv)
    if args.command == "run":
        return run_locust(args)
    return print_verdict(args.path, Slo())


if __name__ == "__main__":
    sys.exit(main())
