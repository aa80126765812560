"""One measured run of one configuration: wrk (or lone sequential requests) against its server,
with the server's CPU, the niced shadow threads' CPU and the counters the run moved."""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass

from loadtest.bench.common import Target
from loadtest.bench.probes import sequential_timings_ms
from loadtest.bench.processes import (
    TICKS,
    machine_busy_ticks,
    niced_thread_ticks,
    tree_cpu_ticks,
)
from loadtest.bench.wrk import WrkResult, parse_wrk, run_wrk
from loadtest.shadow_cost.configs import JOBS, LONE_REQUESTS, OFF
from loadtest.shadow_cost.counters import ShadowCounters, scrape
from loadtest.wrk_bodies import WrkBodies


@dataclass
class RunRecord(WrkResult):
    """One run against one configuration: what wrk (or the lone requests) measured, and what the
    server spent on it."""

    round: int
    job: str
    config: str
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
        result, server_s, other_s = _lone_requests(target, bodies.probe)
    else:
        measured = run_wrk(
            target,
            path=job.path,
            script=job.script,
            script_args=bodies.script_args(job.rows),
            connections=job.connections,
            duration_s=duration_s,
            threads=2,
        )
        result, server_s = parse_wrk(measured.stdout), measured.server_cpu_s
        other_s = max(measured.machine_cpu_s - server_s - measured.wrk_cpu_s, 0.0)
    niced = (niced_thread_ticks(target.pid) - niced_before) / TICKS
    time.sleep(settle_s)  # the shadow scores what is queued every 50 ms: let the last go out
    counters = scrape(target.url).minus(before)
    return RunRecord(
        **asdict(result),
        round=round_,
        job=job_name,
        config=config,
        server_cpu_s=server_s,
        other_cpu_s=other_s,
        shadow_thread_cpu_s=niced,
        counters=counters,
    )


def _lone_requests(target: Target, body: bytes) -> tuple[WrkResult, float, float]:
    """``LONE_REQUESTS`` single predictions of ``body`` one after another on one keep-alive
    connection: what they measured (as wrk would report it), the server's CPU seconds and the
    rest of the machine's (this process's own excluded)."""
    server_before, busy_before, own_before = (
        sum(tree_cpu_ticks(target.pid).values()),
        machine_busy_ticks(),
        time.process_time(),
    )
    started = time.perf_counter()
    timings, failed = sequential_timings_ms(target.url, body, LONE_REQUESTS)
    wall = time.perf_counter() - started
    server_s = (sum(tree_cpu_ticks(target.pid).values()) - server_before) / TICKS
    busy_s = (machine_busy_ticks() - busy_before) / TICKS
    own_s = time.process_time() - own_before
    timings.sort()
    result = WrkResult(
        requests=len(timings),
        rps=len(timings) / wall,
        p50_ms=statistics.median(timings),
        p99_ms=timings[min(len(timings) - 1, int(0.99 * len(timings)))],
        non_2xx=failed,
        socket_errors=0,
    )
    return result, server_s, max(busy_s - server_s - own_s, 0.0)


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
