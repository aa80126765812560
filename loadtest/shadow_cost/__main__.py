"""``python -m loadtest.shadow_cost``: arguments, the benchmark's own models, the servers, the
warm-up and the rounds; ``runs.json``, ``report.md`` and the server logs go to ``--out``."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import loadtest.shadow_cost
from loadtest.bench.common import Target
from loadtest.bench.targets import source_state
from loadtest.servers import ROOT, start_service, stop_process_group, wait_ready
from loadtest.shadow_cost.configs import (
    BATCH_ROWS,
    JOBS,
    OFF,
    config_env,
    parse_configs,
    round_order,
)
from loadtest.shadow_cost.report import render
from loadtest.shadow_cost.runs import RunRecord, measure, run_line
from loadtest.wrk_bodies import write_wrk_bodies

USAGE = loadtest.shadow_cost.__doc__
"""The package's docstring: what the run measures and how to start it (``--help``)."""

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


# --------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m loadtest.shadow_cost",
        description=(USAGE or "").splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join((USAGE or "").splitlines()[2:]),
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
        "-m",
        "loadtest.shadow_cost",
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
            url, procs[name] = start_service(
                args.out,
                name,
                model_tag=champion,
                workers=args.workers,
                # the shadow is on only where the configuration says so
                base_env={
                    k: v for k, v in os.environ.items() if not k.startswith("DELIVERY_ETA_SHADOW")
                },
                settings={
                    "DELIVERY_ETA_METRICS_CACHE_S": "0",  # scraped around each run: no cache
                    **config_env(name, challenger, args.fraction),
                },
            )
            targets[name] = Target(name, "service", args.workers, url, procs[name].pid)
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
            f"shadow cost at {source_state()}, {started_at}, {os.cpu_count()} cores,"
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
