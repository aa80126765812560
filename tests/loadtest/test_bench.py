"""Parsing and reporting of the benchmark (loadtest/bench/), on canned wrk output (no server,
no wrk)."""

from __future__ import annotations

import pytest

from loadtest.bench.common import BENTO, NO_BATCH, REFERENCE, VARIANT
from loadtest.bench.report import Summary, render
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
    target: str, rps: float, kind: str = "single", conns: int = 64, rows: int = 1, rnd: int = 1
) -> Run:
    result = WrkResult(int(rps * 10), rps, 10.0, 40.0, 0, 0)
    return Run(kind, target, conns, rows, rnd, 10.0, result, 0.2, 15.0, 19.0)


def test_table_reports_medians_ratios_and_targets() -> None:
    runs = [
        _run(BENTO, 900, rnd=1),
        _run(BENTO, 1100, rnd=2),
        _run(REFERENCE, 400, rnd=1),
        _run(REFERENCE, 500, rnd=2),
        _run(NO_BATCH, 300),
        _run(BENTO, 150, kind="batch", conns=8, rows=1000),
    ]
    table, verdicts = render(Summary(runs), [64], [1000], 8, "header")
    assert "| requests/s @ 64 conns | 1000 | 450 | 2.22x | 300 | 3.33x |" in table
    assert "| 1000 rows per call | 150 | 150,000 |" in table
    assert "MET    single-row RPS @ 64 conns >= 2x plain: 2.22x" in verdicts
    assert "MET    p99 @ 64 conns <= 50 ms: 40.0 ms" in verdicts
    assert "MET    batch endpoint >= 100,000 rows/s: 150,000" in verdicts
    # CPU shares: 0.2 s of wrk and 15 s of server over 10 s on this machine's cores.
    assert "wrk (load generator)" in table


def test_a_variant_gets_its_own_columns_and_batch_rows() -> None:
    runs = [
        _run(BENTO, 1000),
        _run(VARIANT, 500),
        _run(BENTO, 100, kind="batch", conns=8, rows=1000),
        _run(VARIANT, 20, kind="batch", conns=8, rows=1000),
    ]
    table, _ = render(Summary(runs), [64], [1000], 8, "header")
    assert "| requests/s @ 64 conns | 1000 | 500 | 2.00x |" in table
    assert "BentoML ÷ variant" in table
    assert "plain FastAPI" not in table  # targets that did not run get no column
    assert "| 1000 rows per call (BentoML variant) | 20.0 | 20,000 |" in table
