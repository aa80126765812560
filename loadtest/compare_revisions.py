"""Two checkouts of the service, alternated under the same load: did a change cost throughput?

    git worktree add --detach /tmp/before <commit>
    python -m loadtest.compare_revisions --before /tmp/before --after . --model-tag <tag>

Both serve the same model (from ``$BENTOML_HOME``'s store), each with a private home and
prediction log, at the same worker count. Each round runs wrk for single-row predictions at 64
connections and 1000-row batches at 8, in alternating order; the medians and the after/before
ratios (req/s and server CPU-ms per request) print at the end. A ratio, not an absolute figure,
is what a noisy machine can answer.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import time
from pathlib import Path

from loadtest.bench.common import Target
from loadtest.bench.measure import BATCH_SCRIPT, SINGLE_SCRIPT
from loadtest.bench.wrk import parse_wrk, run_wrk
from loadtest.servers import start_service, stop_process_group, wait_ready
from loadtest.wrk_bodies import write_wrk_bodies

BATCH_ROWS = 1000
JOBS = {
    "single": ("/v1/predict", SINGLE_SCRIPT, None, 64),
    "batch": ("/v1/predict/batch", BATCH_SCRIPT, BATCH_ROWS, 8),
}
"""(route, wrk script, rows per body -- None for single orders --, connections)."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="checkout of the old code")
    parser.add_argument("--after", type=Path, default=Path("."), help="checkout of the new code")
    parser.add_argument("--model-tag", required=True)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=6, help="seconds per wrk run")
    parser.add_argument("--out", type=Path, default=Path("/tmp/compare-revisions"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    checkouts = {"before": args.before.resolve(), "after": args.after.resolve()}
    procs: dict[str, subprocess.Popen[bytes]] = {}
    targets: dict[str, Target] = {}
    try:
        for name, cwd in checkouts.items():
            url, procs[name] = start_service(
                args.out, name, model_tag=args.model_tag, workers=args.workers, cwd=cwd
            )
            targets[name] = Target(name, "service", args.workers, url, procs[name].pid)
        for target in targets.values():
            wait_ready(target.url, 180, procs[target.name])
        time.sleep(5)  # let start-up work (gc, first batches) settle
        # One set of bodies for both: the new code's served contract (an old revision without
        # GET /contract serves the default one), its model's known entity ids.
        bodies = write_wrk_bodies(targets["after"].url, args.out / "bodies", [BATCH_ROWS])
        results: dict[tuple[str, str], list[tuple[float, float, float, float]]] = {
            (name, job): [] for name in checkouts for job in JOBS
        }
        for round_ in range(args.rounds):
            order = list(checkouts) if round_ % 2 == 0 else list(checkouts)[::-1]
            for job, (path, script, rows, connections) in JOBS.items():
                for name in order:
                    measured = run_wrk(
                        targets[name],
                        path=path,
                        script=script,
                        script_args=bodies.script_args(rows),
                        connections=connections,
                        duration_s=args.duration,
                        threads=2,
                    )
                    wrk = parse_wrk(measured.stdout)
                    cpu_ms = 1000 * measured.server_cpu_s / max(wrk.requests, 1)
                    results[name, job].append((wrk.rps, wrk.p50_ms, wrk.p99_ms, cpu_ms))
                    print(
                        f"round {round_} {job:6} {name:6} req/s {wrk.rps:7.0f}  p50 {wrk.p50_ms:6.1f}"
                        f"  p99 {wrk.p99_ms:6.1f} ms  CPU {cpu_ms:6.3f} ms/req  non-2xx {wrk.non_2xx}",
                        flush=True,
                    )
        for job in JOBS:
            medians = {
                name: [statistics.median(r[i] for r in results[name, job]) for i in range(4)]
                for name in checkouts
            }
            before, after = medians["before"], medians["after"]
            print(
                f"{job}: medians req/s {before[0]:.0f} -> {after[0]:.0f} ({after[0] / before[0]:.2f}x),"
                f" p99 {before[2]:.0f} -> {after[2]:.0f} ms,"
                f" CPU/request {before[3]:.3f} -> {after[3]:.3f} ms ({after[3] / before[3]:.2f}x)"
            )
    finally:
        for proc in procs.values():
            stop_process_group(proc)


if __name__ == "__main__":
    main()
