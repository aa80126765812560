"""Command line of the benchmark: flags, then start the servers, measure, stop, report."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib.util
import os
import shutil
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import loadtest.bench
from loadtest.bench.columnar import (
    ColumnarPlan,
    columnar_report,
    holdout_ceiling,
    measure_columnar,
    prepare,
    service_env,
    write_columnar,
)
from loadtest.bench.common import (
    ALIASES,
    BATCH_ROUTE_SERVERS,
    CORES,
    DEFAULT_SERVERS,
    FASTAPI_FLOOR,
    LABELS,
    REPO_ROOT,
    SERVERS,
    SERVICE,
    TUTORIAL,
    VARIANT,
)
from loadtest.bench.measure import Plan, cold_starts, measure_rounds, probe_idle
from loadtest.bench.report import Summary, render
from loadtest.bench.results import bench_header, report_text, write_results
from loadtest.bench.runs import Run
from loadtest.bench.sustained import run_sustained
from loadtest.bench.targets import source_state, start_targets
from loadtest.bench.workers import TargetSpec, describe_workers, parse_workers, target_specs
from loadtest.wrk_bodies import write_wrk_bodies


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def build_parser() -> argparse.ArgumentParser:
    env = os.environ.get
    parser = argparse.ArgumentParser(
        prog="python -m loadtest.bench",
        description=loadtest.bench.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--workers",
        default=env("BENCH_WORKERS", "2"),
        help="worker counts: '2' for every server, '1,2,3' for one target per server and count "
        "(each one's best), '2 tutorial=1,2,3' to set one server's (see loadtest/bench/workers.py)",
    )
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
    parser.add_argument(
        "--columnar-rows",
        type=_ints,
        default=_ints(env("BENCH_COLUMNAR_ROWS", "1,1000,10000")),
        help="rows per call of the columnar cells (/v1 batch -- /v1/predict at 1 row --, v2 JSON, "
        "v2 binary, and the "
        "model-only ceiling between them; see loadtest/bench/columnar.py); '' skips them",
    )
    parser.add_argument(
        "--columnar-connections",
        type=int,
        default=int(env("BENCH_COLUMNAR_CONNECTIONS", "4")),
        help="concurrent callers of the columnar cells",
    )
    parser.add_argument(
        "--ceiling-seconds", type=float, default=5.0, help="s of each model-only ceiling run"
    )
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument(
        "--sustained",
        type=int,
        default=int(env("BENCH_SUSTAINED", "300")),
        help="s of the sustained cell after the rounds: single rows at 64 connections on the "
        "service, per 30-s window (0: none; see loadtest/bench/sustained.py)",
    )
    parser.add_argument(
        "--targets",
        default=env("BENCH_TARGETS", ",".join(DEFAULT_SERVERS)),
        help=f"comma-separated servers, {SERVICE} included, out of "
        f"{','.join(s for s in SERVERS if s != VARIANT)} (the variant comes from --variant)",
    )
    parser.add_argument(
        "--variant",
        default=env("BENCH_VARIANT", ""),
        help="space-separated NAME=VALUE settings for one more server, the service with a lever "
        "changed, measured A/B against the default one (e.g. DELIVERY_ETA_MODEL_RUNTIME=sklearn)",
    )
    parser.add_argument(
        "--baseline",
        default=None,
        help="target the ratio columns divide by (default: the first service target)",
    )
    parser.add_argument("--out", type=Path, default=None, help="results folder")
    parser.add_argument("--strict", action="store_true", help="exit 1 if a target is missed")
    return parser


def _server_names(parser: argparse.ArgumentParser, text: str) -> list[str]:
    names = [ALIASES.get(t.strip(), t.strip()) for t in text.split(",") if t.strip()]
    unknown = (set(names) - set(SERVERS)) | ({VARIANT} & set(names))
    if "reference" in unknown:
        parser.error(
            "the 'reference' target is gone: its app blocked the event loop with the model "
            f"call (a straw man); {TUTORIAL} is what a user following the FastAPI docs writes"
        )
    if unknown or SERVICE not in names:
        choices = ", ".join(s for s in SERVERS if s != VARIANT)
        parser.error(f"--targets must include {SERVICE} and only {choices}")
    return list(dict.fromkeys(names))


def _variant_env(parser: argparse.ArgumentParser, text: str) -> dict[str, str]:
    settings: dict[str, str] = {}
    for item in text.split():
        name, sep, value = item.partition("=")
        if not sep or not name:
            parser.error(f"--variant wants NAME=VALUE items, got {item!r}")
        settings[name] = value
    return settings


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The flags; ``--variant`` adds the variant server (and names it in the report).

    ``args.specs`` are the targets: one per (server, worker count)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args.servers = _server_names(parser, args.targets)
    args.variant_env = _variant_env(parser, args.variant)
    if args.variant_env:
        args.servers.append(VARIANT)
        LABELS[VARIANT] = "service + " + " ".join(f"{k}={v}" for k, v in args.variant_env.items())
    try:
        args.specs = target_specs(args.servers, parse_workers(args.workers))
    except ValueError as exc:
        parser.error(f"--workers: {exc}")
    names = [spec.name for spec in args.specs]
    if args.baseline is None:
        args.baseline = next(s.name for s in args.specs if s.server == SERVICE)
    elif args.baseline not in names:
        parser.error(f"--baseline must be one of {', '.join(names)}")
    return args


def missing_prerequisite(args: argparse.Namespace) -> str | None:
    """Why the benchmark cannot run here, or None."""
    if shutil.which("wrk") is None:
        return "wrk not found: run `make system-deps`"
    uses_fastapi = {TUTORIAL, FASTAPI_FLOOR} & set(args.servers)
    if uses_fastapi and importlib.util.find_spec("fastapi") is None:
        return (
            f"fastapi is not installed: {', '.join(sorted(uses_fastapi))} need it (dev "
            "dependency: `make env`), or leave them out with --targets"
        )
    return None


def results_folder(args: argparse.Namespace) -> Path:
    """``--out``, or loadtest/results/bench-<time>; created."""
    out: Path = args.out or REPO_ROOT / "loadtest" / "results" / datetime.now().strftime(
        "bench-%Y%m%d-%H%M%S"
    )
    out.mkdir(parents=True, exist_ok=True)
    return out


def announce(args: argparse.Namespace, out: Path) -> None:
    """What will run and roughly how long it takes."""
    specs: list[TargetSpec] = args.specs
    batch_specs = [s for s in specs if s.server in BATCH_ROUTE_SERVERS]
    single_runs = len(specs) * len(args.connections) * args.rounds
    batch_runs = len(args.batch_rows) * args.rounds * len(batch_specs)
    columnar_runs = 3 * len(args.columnar_rows) * args.rounds
    runs = single_runs + batch_runs + columnar_runs
    seconds = runs * (args.duration + 1) + len(specs) * (args.warmup + 15) + 60 + args.sustained
    if args.columnar_rows:
        seconds += round(args.rounds * (args.ceiling_seconds + 15))
    print(
        f"bench: {len(specs)} targets ({describe_workers(specs)} workers) on {CORES} cores; "
        f"{runs} wrk runs of {args.duration} s (~{seconds} s); results in {out}",
        flush=True,
    )


def make_plan(args: argparse.Namespace, out: Path) -> Plan:
    return Plan(
        out=out,
        threads=args.threads,
        duration=args.duration,
        warmup=args.warmup,
        rounds=args.rounds,
        connections=args.connections,
        batch_rows=args.batch_rows,
        batch_connections=args.batch_connections,
    )


def columnar_plan(args: argparse.Namespace, out: Path) -> ColumnarPlan:
    return ColumnarPlan(
        out=out,
        rows=args.columnar_rows,
        connections=args.columnar_connections,
        duration=args.duration,
        rounds=args.rounds,
        threads=args.threads,
        ceiling_s=args.ceiling_seconds,
    )


def benchmark(
    args: argparse.Namespace, plan: Plan
) -> tuple[str, list[Run], dict[str, dict[str, float]], tuple[list[str], list[str]]]:
    """Start the servers, measure them, stop them: (model version, cold starts then rounds,
    p50 of lone requests per target when fresh and after the load, the columnar cells'
    table lines and verdicts)."""
    columnar: tuple[list[str], list[str]] = ([], [])
    with contextlib.ExitStack() as stack:
        order, tag = start_targets(
            stack, args.specs, plan.out, args.variant_env, service_env(args.columnar_rows)
        )
        print(f"model {tag}; servers: " + ", ".join(f"{t.name}={t.url}" for t in order), flush=True)
        # Every target gets the same bodies: the service's contract, its model's known ids.
        service = next(t for t in order if t.server == SERVICE)
        bodies = write_wrk_bodies(service.url, plan.out / "bodies", plan.batch_rows)
        plan = dataclasses.replace(plan, bodies=bodies)
        idle: dict[str, dict[str, float]] = {t.name: {} for t in order}
        probe_idle(plan, order, "fresh", idle)
        cold = cold_starts(plan, order)
        runs = measure_rounds(plan, order)
        if args.columnar_rows:
            wide = prepare(columnar_plan(args, plan.out), service, tag)
            wide_runs, ceilings = measure_columnar(wide, service)
            write_columnar(plan.out, wide_runs, ceilings)
            columnar = columnar_report(wide_runs, ceilings, wide, holdout_ceiling(wide))
            runs += wide_runs
        if args.sustained > 0:
            sustained = run_sustained(service, bodies.single, args.sustained, plan.out)
            print("\n" + sustained.report() + "\n", flush=True)
        # Right after the last load: a dispatcher that remembers the waits it saw under load
        # keeps lone requests waiting that long.
        probe_idle(plan, order, "after load", idle)
    return tag, cold + runs, idle, columnar


def drop_leftovers(out: Path) -> None:
    """Servers are stopped: drop their prediction logs and private homes (tens of MB), keep
    their logs."""
    for leftover in [*out.glob("pl-*.sqlite3*"), *out.glob("home-*")]:
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    problem = missing_prerequisite(args)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    out = results_folder(args)
    announce(args, out)
    plan = make_plan(args, out)
    code = source_state()
    tag, runs, idle, (columnar_lines, columnar_verdicts) = benchmark(args, plan)
    drop_leftovers(out)
    header = bench_header(
        tag, describe_workers(args.specs), args.rounds, args.duration, args.threads, code
    )
    summary = Summary(runs)
    table, verdicts = render(
        summary,
        args.connections,
        args.batch_rows,
        args.batch_connections,
        header,
        idle,
        baseline=args.baseline,
    )
    table += "\n".join(["", *columnar_lines]) if columnar_lines else ""
    verdicts += columnar_verdicts
    report = report_text(table, verdicts, runs)
    print("\n" + report)
    write_results(out, report, runs)
    sustained = " and sustained.md" if args.sustained > 0 else ""
    print(f"\nwritten: {out / 'bench.md'}, {out / 'runs.json'}{sustained}")
    missed = any(v.startswith("MISSED") for v in verdicts)
    return 1 if args.strict and missed else 0
