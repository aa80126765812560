"""The cells of the benchmark's tables: what each column measures of a run, and how a value
prints (medians over the rounds, ratios "baseline ÷ it")."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from loadtest.bench.runs import Run

Metric = Callable[[Run], float]


def median(values: Iterable[float]) -> float:
    """Median of the values that are numbers (NaN for none)."""
    numbers = [v for v in values if v == v]
    return statistics.median(numbers) if numbers else float("nan")


def format_value(value: float, unit: str = "") -> str:
    """``value`` as a table prints it in ``unit`` (``ms``, ``int``, ``cpu`` or a plain number);
    "—" for NaN, a cell nothing measured."""
    if value != value:  # NaN
        return "—"
    if unit == "ms":
        return f"{value:.1f} ms" if value < 100 else f"{value:.0f} ms"
    if unit == "int":
        return f"{value:.0f}"
    if unit == "cpu":  # CPU seconds per 1k: milliseconds of CPU per request, 2-3 digits
        return f"{value:.3f}" if value < 1 else (f"{value:.2f}" if value < 10 else f"{value:.1f}")
    if value >= 10_000:
        return f"{value:,.0f}"
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}"


def format_ratio(a: float, b: float) -> str:
    """``a ÷ b`` as ``1.23x``; "—" when either is missing or ``b`` is 0."""
    if a != a or b != b or b == 0:
        return "—"
    return f"{a / b:.2f}x"


def requests_per_s(r: Run) -> float:
    """Requests per second wrk counted."""
    return r.result.rps


def p50_ms(r: Run) -> float:
    """Median latency (ms)."""
    return r.result.p50_ms


def p99_ms(r: Run) -> float:
    """99th-percentile latency (ms)."""
    return r.result.p99_ms


def failed_requests(r: Run) -> float:
    """Non-2xx answers plus socket errors."""
    """Non-2xx responses plus socket errors."""
    return float(r.result.non_2xx + r.result.socket_errors)


def rows_per_s(r: Run) -> float:
    """Orders per second (requests x rows per request)."""
    return r.rows_per_s


def cpu_per_1k_requests(r: Run) -> float:
    """Server CPU seconds per 1,000 requests."""
    return r.cpu_s_per_1k_requests


def cpu_per_1k_rows(r: Run) -> float:
    """Server CPU seconds per 1,000 orders."""
    return r.cpu_s_per_1k_rows


def rss_per_worker(r: Run) -> float:
    """Median resident memory of a worker (MiB)."""
    return r.rss_worker_mib


def rss_total(r: Run) -> float:
    """Resident memory of the whole process tree (MiB)."""
    return r.rss_total_mib


@dataclass(frozen=True)
class Column:
    """One measured column of a table; ``ratio`` columns also get "baseline ÷ it"."""

    header: str
    metric: Metric
    unit: str = ""
    ratio: bool = False


SINGLE_COLUMNS = (
    Column("req/s", requests_per_s, ratio=True),
    Column("p50", p50_ms, "ms", ratio=True),
    Column("p99", p99_ms, "ms", ratio=True),
    Column("non-2xx + socket errors", failed_requests, "int"),
    Column("CPU-s / 1k req", cpu_per_1k_requests, "cpu", ratio=True),
    Column("RSS / worker (MiB)", rss_per_worker, "int"),
    Column("RSS total (MiB)", rss_total, "int"),
)
COLD_COLUMNS = (
    Column("req/s", requests_per_s, ratio=True),
    Column("p99", p99_ms, "ms", ratio=True),
    Column("non-2xx + socket errors", failed_requests, "int"),
    Column("CPU-s / 1k req", cpu_per_1k_requests, "cpu", ratio=True),
)
BATCH_COLUMNS = (
    Column("req/s", requests_per_s),
    Column("rows/s", rows_per_s, ratio=True),
    Column("p50", p50_ms, "ms", ratio=True),
    Column("p99", p99_ms, "ms", ratio=True),
    Column("non-2xx + socket errors", failed_requests, "int"),
    Column("CPU-s / 1k rows", cpu_per_1k_rows, "cpu", ratio=True),
    Column("RSS / worker (MiB)", rss_per_worker, "int"),
)
