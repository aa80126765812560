"""What one wrk run against one target measured."""

from __future__ import annotations

from dataclasses import dataclass, field

from loadtest.bench.common import CORES
from loadtest.bench.wrk import WrkResult


@dataclass
class Run:
    """One wrk run against one target, with the CPU it and everything else used meanwhile."""

    kind: str  # "single" or "batch"
    target: str
    connections: int
    rows: int  # orders per request
    round: int
    wall_s: float
    result: WrkResult
    wrk_cpu_s: float
    server_cpu_s: float
    machine_cpu_s: float
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def rows_per_s(self) -> float:
        return self.result.rps * self.rows

    def share(self, cpu_s: float) -> float:
        """CPU seconds as a fraction of the machine's capacity during the run."""
        return cpu_s / (self.wall_s * CORES) if self.wall_s else 0.0

    @property
    def other_cpu_s(self) -> float:
        return max(self.machine_cpu_s - self.wrk_cpu_s - self.server_cpu_s, 0.0)
