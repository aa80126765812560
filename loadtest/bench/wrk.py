"""Running wrk against a server (with the CPU used meanwhile and the memory after) and parsing
its output."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from loadtest.bench.common import Target
from loadtest.bench.processes import (
    TICKS,
    children_cpu_s,
    machine_busy_ticks,
    memory_mib,
    tree_cpu_ticks,
)

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


def _grab(pattern: str, out: str) -> str:
    match = re.search(pattern, out)
    if not match:
        raise ValueError(f"wrk output has no {pattern!r}:\n{out}")
    return match.group(1)


def parse_wrk(out: str) -> WrkResult:
    """Parse ``wrk --latency`` output."""
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return WrkResult(
        requests=int(_grab(r"(\d+) requests in", out)),
        rps=float(_grab(r"Requests/sec:\s+([\d.]+)", out)),
        p50_ms=to_ms(_grab(r"\s50%\s+(\S+)", out)),
        p99_ms=to_ms(_grab(r"\s99%\s+(\S+)", out)),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(g) for g in socket.groups()) if socket else 0,
    )


@dataclass
class Measured:
    """One wrk run's output, the CPU it, the target and the whole machine used meanwhile, and
    the target's memory right after."""

    stdout: str
    wall_s: float
    wrk_cpu_s: float
    server_cpu_s: float
    machine_cpu_s: float
    process_cpu_s: list[float]  # per target process (server parent and workers), busiest first
    rss_worker_mib: float  # median over the target's workers
    rss_total_mib: float  # the target's whole process tree


def wrk_command(
    url: str,
    script: Path,
    script_args: Sequence[str],
    connections: int,
    duration_s: int,
    threads: int,
) -> list[str]:
    """The wrk command line: latency distribution, Lua script (with its arguments after ``--``)."""
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
        url,
    ]
    if script_args:
        command += ["--", *script_args]
    return command


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
    command = wrk_command(
        f"{target.url}{path}", script, script_args, connections, duration_s, threads
    )
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
    rss_worker, rss_total = memory_mib(target.pid)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip()}")
    per_process = sorted(
        ((ticks - server_before.get(pid, 0)) / TICKS for pid, ticks in server_after.items()),
        reverse=True,
    )
    return Measured(
        done.stdout, wall, wrk_cpu, sum(per_process), busy, per_process, rss_worker, rss_total
    )
