"""Prove adaptive batching under load: N connections of single predictions, 0 non-2xx, batches > 1.

Starts ``bentoml serve`` on a free loopback port (or uses --url), drives it with wrk and
loadtest/predict.lua, then reads the batch-size histogram from /metrics.

    python -m loadtest.batching_check --connections 64 --duration 15
"""

from __future__ import annotations

import argparse
import contextlib
import re
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator

from loadtest.servers import ROOT, local_server
from loadtest.wrk_bodies import write_wrk_bodies

BATCH_METRIC = "bentoml_service_adaptive_batch_size"


@contextlib.contextmanager
def served(url: str | None) -> Iterator[str]:
    """Yield the URL of a running service, starting one on loopback if none was given."""
    if url:
        yield url.rstrip("/")
        return
    with local_server(ROOT / "loadtest" / "server.log") as server:
        yield server.url


def batch_histogram(url: str) -> tuple[float, float, float]:
    """(batches, requests batched, batches of size 1) summed over workers."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
        text = response.read().decode()
    total = {"count": 0.0, "sum": 0.0, "le1": 0.0}
    for line in text.splitlines():
        if line.startswith(f"{BATCH_METRIC}_count"):
            total["count"] += float(line.rsplit(" ", 1)[1])
        elif line.startswith(f"{BATCH_METRIC}_sum"):
            total["sum"] += float(line.rsplit(" ", 1)[1])
        elif line.startswith(f"{BATCH_METRIC}_bucket") and 'le="1.0"' in line:
            total["le1"] += float(line.rsplit(" ", 1)[1])
    return total["count"], total["sum"], total["le1"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", help="running service; default: start one on a free port")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--duration", type=int, default=15, help="seconds")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk not found: run `make system-deps`", file=sys.stderr)
        return 2

    with served(args.url) as url:
        if not url.startswith(("http://127.", "http://localhost", "http://[::1]")):
            print("refusing to load anything but loopback", file=sys.stderr)
            return 2
        # Orders of the contract the service serves, with its model's known entity ids.
        bodies = write_wrk_bodies(url, ROOT / "loadtest" / "results" / "batching-check-bodies")
        before = batch_histogram(url)
        wrk = subprocess.run(
            [
                "wrk",
                "-t2",
                f"-c{args.connections}",
                f"-d{args.duration}s",
                "--latency",
                "-s",
                str(ROOT / "loadtest" / "predict.lua"),
                f"{url}/v1/predict",
                "--",
                *bodies.script_args(),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        after = batch_histogram(url)

    out = wrk.stdout
    print(out)
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    non_2xx_match = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    non_2xx = int(non_2xx_match.group(1)) if non_2xx_match else 0
    socket_errors = re.search(r"Socket errors: (.*)", out)
    p99 = re.search(r"99%\s+(\S+)", out).group(1)  # type: ignore[union-attr]
    batches, batched, singles = (a - b for a, b in zip(after, before, strict=True))
    mean_batch = batched / batches if batches else 0.0

    errors_text = socket_errors.group(1) if socket_errors else "none"
    print(
        f"connections={args.connections} duration={args.duration}s requests={requests} "
        f"rps={rps:.0f} p99={p99} non_2xx={non_2xx} socket_errors={errors_text}"
    )
    print(
        f"model batches={batches:.0f} mean requests/batch={mean_batch:.1f} "
        f"batches of size 1={singles:.0f} ({singles / batches:.0%} of batches)"
        if batches
        else "no batches"
    )
    failures = []
    if non_2xx:
        failures.append(f"{non_2xx} non-2xx responses")
    if socket_errors:
        failures.append(f"socket errors: {socket_errors.group(1)}")
    if batches == 0 or batched <= batches:
        failures.append("no batch larger than 1 request")
    print("VERDICT: " + ("PASS" if not failures else "FAIL: " + "; ".join(failures)))
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
