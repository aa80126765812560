"""What one wrk run against one target measured, and the per-request costs derived from it."""

from __future__ import annotations

from dataclasses import dataclass, field

from loadtest.bench.common import CORES
from loadtest.bench.wrk import WrkResult


def cpu_s_per_1k(cpu_s: float, completed: float) -> float:
    """CPU seconds per 1,000 completed units (requests, or rows of batch calls); NaN if none
    completed."""
    return cpu_s / completed * 1000.0 if completed > 0 else float("nan")


@dataclass
class Run:
    """One wrk run against one target, with the CPU it and everything else used meanwhile."""

    kind: str  # "single", "batch" or "cold"
    target: str
    connections: int
    rows: int  # orders per request
    round: int
    wall_s: float
    result: WrkResult
    wrk_cpu_s: float
    server_cpu_s: float  # the target's whole process tree (parent and workers)
    machine_cpu_s: float
    extra: dict[str, float] = field(default_factory=dict)
    server: str = ""  # the kind of server (common.SERVERS); the target adds the worker count
    workers: int = 0
    rss_worker_mib: float = float("nan")  # median over the workers, right after the run
    rss_total_mib: float = float("nan")  # the whole process tree, right after the run

    @property
    def rows_per_s(self) -> float:
        return self.result.rps * self.rows

    @property
    def cpu_s_per_1k_requests(self) -> float:
        """Server CPU seconds per 1,000 requests wrk completed (any status)."""
        return cpu_s_per_1k(self.server_cpu_s, self.result.requests)

    @property
    def cpu_s_per_1k_rows(self) -> float:
        """Server CPU seconds per 1,000 predicted orders (= per 1k requests for single rows)."""
        return cpu_s_per_1k(self.server_cpu_s, self.result.requests * self.rows)

    def share(self, cpu_s: float) -> float:
        """CPU seconds as a fraction of the machine's capacity during the run."""
        return cpu_s / (self.wall_s * CORES) if self.wall_s else 0.0

    @property
    def other_cpu_s(self) -> float:
        return max(self.machine_cpu_s - self.wrk_cpu_s - self.server_cpu_s, 0.0)
