"""Per-request costs the benchmark reports: CPU-seconds per 1,000 requests and RSS per worker
(pure functions, plus one real process tree standing in for a server)."""

from __future__ import annotations

import math
import subprocess
import sys
import time

import pytest

from framework_internals import BENTOML_WORKER_MODULE
from loadtest.bench.processes import memory_mib, tree_cpu_ticks, vmrss_kib, worker_pids
from loadtest.bench.runs import Run, cpu_s_per_1k
from loadtest.bench.wrk import WrkResult

STATUS = """Name:\tpython
State:\tS (sleeping)
VmPeak:\t  300000 kB
VmRSS:\t  119448 kB
RssAnon:\t   80000 kB
"""


def test_cpu_seconds_per_thousand() -> None:
    assert cpu_s_per_1k(3.0, 2000) == pytest.approx(1.5)
    assert math.isnan(cpu_s_per_1k(3.0, 0))  # nothing completed: no rate, not infinity


def test_a_runs_cpu_per_1k_requests_and_rows() -> None:
    result = WrkResult(requests=500, rps=50.0, p50_ms=1.0, p99_ms=2.0, non_2xx=0, socket_errors=0)
    run = Run("batch", "service", 8, 100, 1, 10.0, result, 0.1, 4.0, 9.0)
    assert run.cpu_s_per_1k_requests == pytest.approx(8.0)  # 4 CPU-s / 500 calls
    assert run.cpu_s_per_1k_rows == pytest.approx(0.08)  # 4 CPU-s / 50,000 orders


def test_vmrss_from_proc_status() -> None:
    assert vmrss_kib(STATUS) == 119448
    assert vmrss_kib("Name:\tkworker\nState:\tI (idle)\n") == 0  # kernel threads have none


def test_workers_are_the_children_that_are_not_helpers() -> None:
    cmdlines = {
        11: "python -B -c from multiprocessing.resource_tracker import main;main(6)",
        12: "python -B -c from multiprocessing.spawn import spawn_main; spawn_main(...)",
        13: "python -B -c from multiprocessing.spawn import spawn_main; spawn_main(...)",
    }
    assert worker_pids(10, [13, 11, 12], cmdlines) == [12, 13]
    # bentoml serve: the workers are its direct children.
    assert worker_pids(20, [21, 22], {21: f"python -m {BENTOML_WORKER_MODULE}"}) == [21, 22]
    # uvicorn with one worker serves in the process we started.
    assert worker_pids(30, [], {}) == [30]


def test_memory_and_cpu_of_a_real_process_tree() -> None:
    """A parent with two children (like uvicorn --workers 2): RSS per worker is the children's
    median, the total counts all three, and the CPU ticks cover the whole tree."""
    child = "import time; x = bytearray(40 * 2**20); time.sleep(30)"
    parent = (
        "import subprocess, sys, time\n"
        f"kids = [subprocess.Popen([sys.executable, '-c', {child!r}]) for _ in range(2)]\n"
        "print('started', flush=True)\n"
        "time.sleep(30)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", parent], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "started"
        deadline = time.monotonic() + 10
        while True:  # until both children have touched their 40 MiB
            per_worker, total = memory_mib(proc.pid)
            if per_worker >= 40 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert 40 <= per_worker < 100
        assert total > 2 * per_worker  # both children plus the parent
        assert len(tree_cpu_ticks(proc.pid)) == 3
    finally:
        for pid in tree_cpu_ticks(proc.pid):
            if pid != proc.pid:
                subprocess.run(["kill", str(pid)], check=False)
        proc.kill()
        proc.wait()
