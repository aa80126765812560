"""The sustained cell of the benchmark: minutes of single-row load at 64 connections on the
service, reported over the whole run and per 30-s window.

Short runs miss what stalls a worker only after a while -- a cost that grows with how long the
load has lasted (objects that outlive their request pile up until the garbage collector's full
collections scan them) or that comes every few seconds. The cell runs wrk in back-to-back
windows (``loadtest/sustained.lua`` prints each window's latency quantiles at every 0.1 %),
merges the windows into the whole run's p50/p90/p99/max, and reads the service's RSS before
and after each window: memory that keeps growing shows here too.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from loadtest.bench.common import REPO_ROOT, Target
from loadtest.bench.processes import memory_mib
from loadtest.bench.wrk import run_wrk

SCRIPT = REPO_ROOT / "loadtest" / "sustained.lua"
CONNECTIONS = 64
WINDOW_S = 30
QUANTILE_POINTS = 999
"""``sustained.lua`` prints the quantiles at 0.1 %, 0.2 %, ... 99.9 %."""


@dataclass
class Window:
    """One wrk window: its requests, errors, latency quantiles (ms at every 0.1 %) and max, and
    the service's RSS right after it."""

    start_s: int
    requests: int
    non_2xx: int
    socket_errors: int
    quantiles_ms: list[float]
    max_ms: float
    rss_total_mib: float

    def quantile(self, percent: float) -> float:
        """The window's latency at ``percent`` (0.1 to 99.9) in ms."""
        return self.quantiles_ms[round(percent * 10) - 1]


def parse_window(out: str, start_s: int, rss_total_mib: float) -> Window:
    """A window from the output of ``wrk -s loadtest/sustained.lua``."""
    head = re.search(r"SUSTAINED requests=(\d+) non2xx=(\d+) socket_errors=(\d+) max_us=(\d+)", out)
    points = re.search(r"QUANTILES_US ([\d,]+)", out)
    if not head or not points:
        raise ValueError(f"wrk output has no sustained.lua summary:\n{out}")
    quantiles = [int(v) / 1000 for v in points.group(1).split(",")]
    if len(quantiles) != QUANTILE_POINTS:
        raise ValueError(f"expected {QUANTILE_POINTS} quantiles, got {len(quantiles)}")
    requests, non_2xx, errors, max_us = (int(g) for g in head.groups())
    return Window(start_s, requests, non_2xx, errors, quantiles, max_us / 1000, rss_total_mib)


def merged_quantile(windows: Sequence[Window], percent: float) -> float:
    """The whole run's latency at ``percent``: each window's quantiles stand for equal shares of
    its requests (accurate to the 0.1 % grid)."""
    weighted = sorted(
        (value, w.requests / QUANTILE_POINTS) for w in windows for value in w.quantiles_ms
    )
    wanted = percent / 100 * sum(w.requests for w in windows)
    seen = 0.0
    for value, weight in weighted:
        seen += weight
        if seen >= wanted:
            return value
    return weighted[-1][0]


@dataclass
class Sustained:
    """What the cell measured: every window and the service's RSS before the first."""

    target: str
    windows: list[Window]
    rss_start_mib: float

    def row(self, label: str, windows: Sequence[Window]) -> str:
        """One line of the table: requests, p50/p90/p99/max, errors."""
        p50, p90, p99 = (merged_quantile(windows, p) for p in (50, 90, 99))
        errors = sum(w.non_2xx + w.socket_errors for w in windows)
        return (
            f"| {label} | {sum(w.requests for w in windows)} | {p50:.1f} | {p90:.1f} | "
            f"{p99:.1f} | {max(w.max_ms for w in windows):.1f} | {errors} |"
        )

    def report(self) -> str:
        """The cell's table in Markdown: the whole run, then each window."""
        total_s = len(self.windows) * WINDOW_S
        lines = [
            f"## Sustained: {self.target}, single rows at {CONNECTIONS} connections, "
            f"{total_s} s in {WINDOW_S}-s windows",
            "",
            "| window | requests | p50 ms | p90 ms | p99 ms | max ms | errors |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
            self.row("whole run", self.windows),
            *(self.row(f"{w.start_s}-{w.start_s + WINDOW_S} s", [w]) for w in self.windows),
            "",
            f"RSS (whole process tree): {self.rss_start_mib:.0f} MiB at the start, "
            f"{self.windows[-1].rss_total_mib:.0f} MiB at the end "
            f"(per window: {', '.join(f'{w.rss_total_mib:.0f}' for w in self.windows)}). "
            "Errors: non-2xx answers plus socket errors.",
        ]
        return "\n".join(lines)


def run_sustained(
    target: Target, bodies: Path, duration_s: int, out: Path, threads: int = 2
) -> Sustained:
    """Drive ``target`` for ``duration_s`` (rounded up to whole windows) and write
    ``sustained.md`` and ``sustained.json`` into ``out``."""
    windows: list[Window] = []
    rss_start = memory_mib(target.pid)[1]
    for start in range(0, duration_s, WINDOW_S):
        measured = run_wrk(
            target,
            path="/v1/predict",
            script=SCRIPT,
            script_args=[str(bodies)],
            connections=CONNECTIONS,
            duration_s=WINDOW_S,
            threads=threads,
        )
        window = parse_window(measured.stdout, start, measured.rss_total_mib)
        windows.append(window)
        print(
            f"  sustained {target.name} {start:4d}-{start + WINDOW_S} s: "
            f"{window.requests} requests  p50 {window.quantile(50):.1f} ms  "
            f"p99 {window.quantile(99):.1f} ms  max {window.max_ms:.0f} ms  "
            f"errors {window.non_2xx + window.socket_errors}  RSS {window.rss_total_mib:.0f} MiB",
            flush=True,
        )
    result = Sustained(target.name, windows, rss_start)
    (out / "sustained.md").write_text(result.report() + "\n")
    (out / "sustained.json").write_text(json.dumps(asdict(result), indent=1))
    return result
