"""How a pooled client's keep-alive connections spread over the workers (issue #12, finding 6).

    python -m loadtest.connection_balance --url http://127.0.0.1:3000 --server-pid <bentoml serve pid>
        [--connections 4] [--seconds 15] [--stagger 0]

``--connections`` threads each keep one keep-alive connection busy with single predictions (a
proxy's upstream pool, opened ``--stagger`` seconds apart as a pool grows with load),
reconnecting only when the server closes one; at the end it prints the CPU seconds each worker
process spent meanwhile (from /proc, through psutil) and its share, and how many connections
the server closed (``Connection: close`` after
``DELIVERY_ETA_MAX_REQUESTS_PER_CONNECTION`` requests). Loopback only, like every load here.
"""

from __future__ import annotations

import argparse
import http.client
import json
import threading
import time
from urllib.parse import urlsplit

import psutil

from framework_internals import bentoml_worker_processes
from models.contract.bodies import example_order
from models.served_contract import fetch_contract


def workers(server_pid: int) -> list[psutil.Process]:
    """BentoML's worker processes under the ``bentoml serve`` process ``server_pid``."""
    found = bentoml_worker_processes(psutil.Process(server_pid))
    if not found:
        raise SystemExit(f"no BentoML worker under pid {server_pid}")
    return found


def cpu_seconds(process: psutil.Process) -> float:
    """User + system CPU seconds ``process`` has used."""
    times = process.cpu_times()
    return float(times.user + times.system)


def drive(
    url: str, body: str, stop: threading.Event, tally: dict[str, int], lock: threading.Lock
) -> None:
    """Keep one keep-alive connection busy with ``body`` until ``stop``; count requests and
    reconnects."""
    target = urlsplit(url)
    requests = reconnects = 0
    connection = http.client.HTTPConnection(target.hostname or "127.0.0.1", target.port or 80)
    while not stop.is_set():
        connection.request("POST", "/v1/predict", body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        response.read()
        requests += 1
        if response.status != 200:
            raise SystemExit(f"HTTP {response.status}")
        if response.getheader("connection", "").lower() == "close":
            connection.close()  # the pool opens a new one, which any worker may accept
            reconnects += 1
    connection.close()
    with lock:
        tally["requests"] += requests
        tally["reconnects"] += reconnects


def main() -> None:
    """Parse the flags, drive the connections, print each worker's CPU share."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:3000")
    parser.add_argument("--server-pid", type=int, required=True)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--stagger", type=float, default=0.0)
    args = parser.parse_args()
    processes = workers(args.server_pid)
    before = {p.pid: cpu_seconds(p) for p in processes}
    stop, lock = threading.Event(), threading.Lock()
    tally = {"requests": 0, "reconnects": 0}
    body = json.dumps(example_order(fetch_contract(args.url)))  # the served contract's example
    threads = [
        threading.Thread(target=drive, args=(args.url, body, stop, tally, lock))
        for _ in range(args.connections)
    ]
    for thread in threads:
        thread.start()
        time.sleep(args.stagger)
    time.sleep(args.seconds)
    stop.set()
    for thread in threads:
        thread.join()
    used = {p.pid: cpu_seconds(p) - before[p.pid] for p in processes}
    total = sum(used.values()) or 1.0
    shares = ", ".join(f"pid {pid}: {s:.1f} CPU-s ({s / total:.0%})" for pid, s in used.items())
    print(
        f"{args.connections} keep-alive connections, {args.seconds:.0f} s: "
        f"{tally['requests']} requests, {tally['reconnects']} closed by the server; {shares}"
    )


if __name__ == "__main__":
    main()
