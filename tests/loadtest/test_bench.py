"""Parsing and reporting of the benchmark (loadtest/bench/), on canned wrk output and made-up
runs (no server, no wrk)."""

from __future__ import annotations

import json
import math

import pytest

from loadtest.bench.common import BENTOML_FLOOR, FASTAPI_FLOOR, SERVICE, TUTORIAL, VARIANT
from loadtest.bench.report import Summary, best_worker_counts, render
from loadtest.bench.results import run_record
from loadtest.bench.runs import Run
from loadtest.bench.wrk import WrkResult, parse_wrk, to_ms

WRK_OUT = """Running 10s test @ http://127.0.0.1:41234/v1/predict
  2 threads and 512 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   725.20ms  210.11ms   1.11s    70.00%
    Req/Sec   260.12     80.00   400.00     65.00%
  Latency Distribution
     50%  725.20ms
     75%  850.00ms
     90%  990.00ms
     99%    1.11s
  5061 requests in 10.01s, 2.01MB read
  Socket errors: connect 0, read 3, write 0, timeout 2
  Non-2xx or 3xx responses: 17
Requests/sec:    505.60
Transfer/sec:    205.55KB
"""


@pytest.mark.parametrize(
    ("text", "ms"),
    [("812.00us", 0.812), ("4.21ms", 4.21), ("1.34s", 1340.0), ("2.00m", 120_000.0)],
)
def test_wrk_durations(text: str, ms: float) -> None:
    assert to_ms(text) == pytest.approx(ms)


def test_parse_wrk() -> None:
    assert parse_wrk(WRK_OUT) == WrkResult(
        requests=5061, rps=505.6, p50_ms=725.2, p99_ms=1110.0, non_2xx=17, socket_errors=5
    )


def test_parse_wrk_clean_run() -> None:
    clean = "\n".join(
        line for line in WRK_OUT.splitlines() if "Socket" not in line and "Non-2xx" not in line
    )
    result = parse_wrk(clean)
    assert (result.non_2xx, result.socket_errors) == (0, 0)


def _run(
    target: str,
    rps: float,
    kind: str = "single",
    conns: int = 64,
    rows: int = 1,
    rnd: int = 1,
    *,
    server: str | None = None,
    workers: int = 2,
    server_cpu_s: float = 15.0,
    rss: float = 200.0,
) -> Run:
    """A 10-s run of ``target`` at ``rps`` (p50 10 ms, p99 40 ms, no errors)."""
    result = WrkResult(int(rps * 10), rps, 10.0, 40.0, 0, 0)
    return Run(
        kind,
        target,
        conns,
        rows,
        rnd,
        10.0,
        result,
        0.2,
        server_cpu_s,
        19.0,
        server=server or target,
        workers=workers,
        rss_worker_mib=rss,
        rss_total_mib=rss * (workers + 1),
    )


def _row(table: str, label: str, title: str) -> str:
    """The row starting with ``label`` in the table whose header starts with ``title``."""
    section = table[table.index(f"| {title}") :]
    section = section[: section.index("\n\n")] if "\n\n" in section else section
    return next(line for line in section.splitlines() if line.startswith(f"| {label} |"))


def test_table_has_a_row_per_target_with_ratios_service_over_it() -> None:
    runs = [
        _run(SERVICE, 900, rnd=1, rss=250),
        _run(SERVICE, 1100, rnd=2, rss=250),
        _run(TUTORIAL, 400, rnd=1, server_cpu_s=8.0),
        _run(TUTORIAL, 500, rnd=2, server_cpu_s=8.0),
        _run(FASTAPI_FLOOR, 2000, server_cpu_s=10.0, rss=55),
        _run(BENTOML_FLOOR, 1250, rss=110),
        _run(SERVICE, 150, kind="batch", conns=8, rows=1000),
        _run(TUTORIAL, 100, kind="batch", conns=8, rows=1000, server_cpu_s=10.0),
    ]
    table, verdicts = render(Summary(runs), [64], [1000], 8, "header")
    title = "single-row `/v1/predict` @ 64 conns"
    # CPU-s per 1k requests is a median over the rounds like every figure: the service's
    # 15 CPU-s per run for 9,000 and 11,000 requests give 1.667 and 1.364 -> 1.52.
    assert _row(table, "service (BentoML, batching on)", title) == (
        "| service (BentoML, batching on) | 2 | 1000 | 10.0 ms | 40.0 ms | 0 | 1.52 | 250 | 750 "
        "| — | — | — | — |"
    )
    assert _row(table, "tutorial FastAPI app", title) == (
        "| tutorial FastAPI app | 2 | 450 | 10.0 ms | 40.0 ms | 0 | 1.80 | 200 | 600 "
        "| 2.22x | 1.00x | 1.00x | 0.84x |"
    )
    assert _row(table, "FastAPI floor", title).startswith("| FastAPI floor | 2 | 2000 |")
    assert "| 0.50x | 1.00x | 1.00x | 3.03x |" in _row(table, "FastAPI floor", title)
    assert "service ÷ it: CPU-s / 1k req" in table
    # Batch: only the servers with a batch route ran it; CPU per 1k rows, rows/s ratio.
    batch_title = "`/v1/predict/batch`, 1000 rows per call @ 8 conns"
    assert _row(table, "service (BentoML, batching on)", batch_title).startswith(
        "| service (BentoML, batching on) | 2 | 150 | 150,000 |"
    )
    assert "| 1.50x |" in _row(table, "tutorial FastAPI app", batch_title)
    assert "BentoML floor" not in table[table.index(batch_title) :].split("\n\n")[0]
    assert (
        "MET    single-row RPS @ 64 conns >= 2x the tutorial app (service ÷ tutorial): 2.22x"
        in verdicts
    )
    assert "MET    p99 @ 64 conns <= 50 ms: 40.0 ms" in verdicts
    assert "MET    batch endpoint >= 100,000 rows/s: 150,000" in verdicts
    assert "wrk (load generator)" in table


def test_a_variant_gets_its_own_row_and_batch_row() -> None:
    runs = [
        _run(SERVICE, 1000),
        _run(VARIANT, 500),
        _run(SERVICE, 100, kind="batch", conns=8, rows=1000),
        _run(VARIANT, 20, kind="batch", conns=8, rows=1000),
    ]
    table, verdicts = render(Summary(runs), [64], [1000], 8, "header")
    assert "| service variant | 2 | 500 |" in table
    assert "tutorial" not in table  # targets that did not run get no row
    assert "| service variant | 2 | 20.0 | 20,000 |" in table
    assert not any("tutorial app" in v for v in verdicts)


def test_several_worker_counts_make_one_row_each_and_a_best_count() -> None:
    runs = [
        _run("service@w1", 600, server=SERVICE, workers=1),
        _run("service@w2", 1000, server=SERVICE, workers=2),
        _run("tutorial@w1", 300, server=TUTORIAL, workers=1),
        _run("tutorial@w2", 450, server=TUTORIAL, workers=2),
        _run("tutorial@w3", 400, server=TUTORIAL, workers=3),
    ]
    summary = Summary(runs)
    assert best_worker_counts(summary, summary.targets(), [64]) == {
        SERVICE: {64: (2, 1000.0)},
        TUTORIAL: {64: (2, 450.0)},
    }
    table, verdicts = render(summary, [64], [], 8, "header", baseline="service@w2")
    title = "single-row `/v1/predict` @ 64 conns"
    # The baseline's row comes first; the ratio columns divide by it.
    first = table[table.index(f"| {title}") :].splitlines()[2]
    assert first.startswith("| service (BentoML, batching on) | 2 | 1000 |")
    assert "| tutorial FastAPI app | 3 | 400 |" in table
    assert "| 2.50x |" in _row(table, "tutorial FastAPI app | 3", title)
    assert "| tutorial FastAPI app | 2 (450 req/s) |" in table
    # The verdict compares with the tutorial at the baseline's worker count.
    assert any("(service@w2 ÷ tutorial@w2): 2.22x" in v for v in verdicts)


def test_lone_request_table_divides_by_the_baseline() -> None:
    runs = [_run(SERVICE, 1000), _run(TUTORIAL, 500)]
    idle = {SERVICE: {"fresh": 2.0, "after load": 3.0}, TUTORIAL: {"fresh": 4.0, "after load": 2.0}}
    table, _ = render(Summary(runs), [64], [], 8, "header", idle)
    assert "| tutorial FastAPI app | 2 | 4.0 ms | 2.0 ms | 0.50x | 1.50x |" in table


def test_runs_json_records_costs_and_stays_strict_json() -> None:
    run = _run(SERVICE, 100, server_cpu_s=5.0)
    run.rss_total_mib = float("nan")  # e.g. the server was gone when memory was read
    record = run_record(run)
    assert record["cpu_s_per_1k_requests"] == 5.0
    assert record["rss_worker_mib"] == 200.0
    assert record["rss_total_mib"] is None
    assert record["server"] == SERVICE and record["workers"] == 2
    json.dumps(record, allow_nan=False)
    assert not math.isnan(record["cpu_s_per_1k_rows"])
