"""The SLO verdict of `make loadtest`, on synthetic locust stats rows (no server, no locust run)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from loadtest.slo import (
    AGGREGATED,
    INVALID_PREFIX,
    Slo,
    StatsRow,
    is_loopback_url,
    judge,
    main,
    parse_stats,
    read_stats,
    report,
)

# Columns exactly as locust 2.x writes <prefix>_stats.csv.
HEADER = [
    "Type",
    "Name",
    "Request Count",
    "Failure Count",
    "Median Response Time",
    "Average Response Time",
    "Min Response Time",
    "Max Response Time",
    "Average Content Size",
    "Requests/s",
    "Failures/s",
    "50%",
    "66%",
    "75%",
    "80%",
    "90%",
    "95%",
    "98%",
    "99%",
    "99.9%",
    "99.99%",
    "100%",
]

INVALID_PREDICT = f"{INVALID_PREFIX} POST /v1/predict"


def row(
    name: str,
    requests: int,
    failures: int = 0,
    p50: float | str = 8,
    p95: float | str = 40,
    p99: float | str = 90,
    method: str = "POST",
) -> dict[str, str]:
    """One stats row; percentiles in ms (locust writes integers, or N/A with no requests)."""
    values = {
        "Type": method,
        "Name": name,
        "Request Count": str(requests),
        "Failure Count": str(failures),
        "Median Response Time": str(p50),
        "Average Response Time": "12.5",
        "Min Response Time": "1.2",
        "Max Response Time": "180.4" if requests else "0",
        "Average Content Size": "360",
        "Requests/s": f"{requests / 60:.3f}",
        "Failures/s": f"{failures / 60:.3f}",
    }
    for column in HEADER[11:]:
        values[column] = str(p50)
    values["95%"], values["99%"] = str(p95), str(p99)
    return values


def aggregated(requests: int, failures: int = 0, **percentiles: float | str) -> dict[str, str]:
    return {**row(AGGREGATED, requests, failures, **percentiles), "Type": ""}  # type: ignore[arg-type]


def healthy_run(invalid_failures: int = 0) -> list[dict[str, str]]:
    """A run that meets the SLO: 10 000 requests, 200 of them invalid payloads refused."""
    return [
        row("GET /health", 800, method="GET", p50=3, p95=10, p99=20),
        row("POST /v1/predict", 8600, p50=9, p95=45, p99=120),
        row("POST /v1/predict/batch", 400, p50=60, p95=150, p99=300),
        row(INVALID_PREDICT, 200, invalid_failures, p50=4, p95=12, p99=30),
        aggregated(10_000, invalid_failures, p50=9, p95=60, p99=160),
    ]


def write_csv(folder: Path, rows: list[dict[str, str]]) -> Path:
    path = folder / "locust_stats.csv"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=HEADER)
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_a_healthy_run_passes() -> None:
    verdict = judge(parse_stats(healthy_run()))
    assert verdict.passed, verdict.breaches
    assert (verdict.requests, verdict.unexpected_errors, verdict.error_rate) == (10_000, 0, 0.0)
    assert (verdict.p50_ms, verdict.p95_ms, verdict.p99_ms) == (9, 60, 160)


def test_invalid_payloads_refused_with_4xx_count_as_correct() -> None:
    # The locustfile marks a 4xx answer to an invalid payload as success: 0 failures there.
    verdict = judge(parse_stats(healthy_run()))
    assert verdict.passed
    assert verdict.invalid_sent == 200
    assert verdict.invalid_not_refused == 0
    assert "200 sent, 200 refused with 4xx (counted as correct)" in report(
        parse_stats(healthy_run()), verdict
    )


def test_invalid_payloads_answered_2xx_or_5xx_are_unexpected_errors() -> None:
    # 20 invalid payloads were accepted (or crashed the server): 0.2 % unexpected errors.
    verdict = judge(parse_stats(healthy_run(invalid_failures=20)))
    assert not verdict.passed
    assert verdict.invalid_not_refused == 20
    assert verdict.unexpected_errors == 20
    assert any(b.startswith("unexpected error rate 0.200%") for b in verdict.breaches)


@pytest.mark.parametrize(
    ("percentiles", "breach"),
    [
        ({"p50": 50}, "p50 50 ms >= 50 ms"),  # the bounds are strict: p50 < 50 ms
        ({"p50": 75}, "p50 75 ms >= 50 ms"),
        ({"p95": 200}, "p95 200 ms >= 200 ms"),
        ({"p95": 420}, "p95 420 ms >= 200 ms"),
        ({"p99": 500}, "p99 500 ms >= 500 ms"),
        ({"p99": 1300}, "p99 1300 ms >= 500 ms"),
    ],
)
def test_each_latency_breach_fails(percentiles: dict[str, float], breach: str) -> None:
    values = {"p50": 9.0, "p95": 60.0, "p99": 160.0, **percentiles}
    rows = [*healthy_run()[:-1], aggregated(10_000, **values)]
    verdict = judge(parse_stats(rows))
    assert not verdict.passed
    assert verdict.breaches == [breach]


def test_latency_just_under_the_bounds_passes() -> None:
    rows = [*healthy_run()[:-1], aggregated(10_000, p50=49, p95=199, p99=499)]
    assert judge(parse_stats(rows)).passed


def test_the_verdict_uses_all_requests_not_one_endpoint() -> None:
    # A slow endpoint alone does not fail the run when the aggregate meets the SLO.
    rows = healthy_run()
    rows[2] = row("POST /v1/predict/batch", 400, p50=120, p95=450, p99=700)
    assert judge(parse_stats(rows)).passed


@pytest.mark.parametrize(
    ("failures", "passed"),
    [(9, True), (10, False), (250, False)],  # budget: < 0.1 % of 10 000 requests
)
def test_unexpected_error_rate(failures: int, passed: bool) -> None:
    rows = healthy_run()
    rows[1] = row("POST /v1/predict", 8600, failures)
    rows[-1] = aggregated(10_000, failures, p50=9, p95=60, p99=160)
    verdict = judge(parse_stats(rows))
    assert verdict.passed is passed
    assert verdict.error_rate == failures / 10_000


def test_breaches_are_all_reported_together() -> None:
    rows = [*healthy_run()[:-1], aggregated(10_000, 500, p50=80, p95=900, p99=3000)]
    verdict = judge(parse_stats(rows))
    assert len(verdict.breaches) == 4
    assert "VERDICT: FAIL: unexpected error rate 5.000%" in report(parse_stats(rows), verdict)


def test_a_run_without_requests_fails() -> None:
    rows = [
        row("POST /v1/predict", 0, p50="N/A", p95="N/A", p99="N/A"),
        aggregated(0, p50="N/A", p95="N/A", p99="N/A"),
    ]
    verdict = judge(parse_stats(rows))
    assert not verdict.passed
    assert "no requests were made" in verdict.breaches


def test_missing_aggregated_row_fails() -> None:
    verdict = judge(parse_stats(healthy_run()[:-1]))
    assert not verdict.passed
    assert any("Aggregated" in b for b in verdict.breaches)


def test_custom_slo() -> None:
    strict = Slo(p50_ms=5, p95_ms=200, p99_ms=500, max_error_rate=0.001)
    assert judge(parse_stats(healthy_run()), strict).breaches == ["p50 9 ms >= 5 ms"]


def test_read_stats_from_file_or_folder(tmp_path: Path) -> None:
    path = write_csv(tmp_path, healthy_run())
    assert read_stats(path) == read_stats(tmp_path)
    names = [r.name for r in read_stats(tmp_path)]
    assert names[-1] == AGGREGATED
    invalid = [r for r in read_stats(tmp_path) if r.invalid_payloads]
    assert [r.name for r in invalid] == [INVALID_PREDICT]


def test_parse_real_locust_float_cells() -> None:
    # locust writes the median of a tiny sample as a float, and N/A for empty percentiles.
    cells = row(INVALID_PREDICT, 2, p50=170)
    cells["Median Response Time"] = "169.88516700075706"
    (parsed,) = parse_stats([cells])
    assert isinstance(parsed, StatsRow)
    assert parsed.p50_ms == 170
    assert parsed.invalid_payloads


def test_verdict_command_exit_codes_and_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.mkdir()
    bad.mkdir()
    write_csv(good, healthy_run())
    write_csv(bad, [*healthy_run()[:-1], aggregated(10_000, p50=9, p95=60, p99=800)])

    assert main(["verdict", str(good)]) == 0
    assert "VERDICT: PASS" in capsys.readouterr().out
    assert json.loads((good / "slo.json").read_text())["verdict"]["passed"] is True
    assert (good / "slo.txt").read_text().rstrip().endswith("VERDICT: PASS")

    assert main(["verdict", str(bad / "locust_stats.csv")]) == 1
    assert "VERDICT: FAIL: p99 800 ms >= 500 ms" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("url", "loopback"),
    [
        ("http://127.0.0.1:3000", True),
        ("http://127.8.9.10:3000", True),
        ("http://localhost:3000", True),
        ("http://[::1]:3000", True),
        ("127.0.0.1:3000", True),
        ("http://10.0.0.5:3000", False),
        ("http://192.168.1.20", False),
        ("http://172.17.0.2:3000", False),
        ("http://0.0.0.0:3000", False),
        ("https://example.com", False),
        ("http://localhost.example.com", False),
        ("ftp://127.0.0.1", False),
    ],
)
def test_only_loopback_hosts_are_loaded(url: str, loopback: bool) -> None:
    assert is_loopback_url(url) is loopback


def test_run_refuses_a_non_loopback_host_before_sending_anything(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["run", "--host", "http://10.1.2.3:3000", "--run-time", "1s"]) == 2
    assert "loopback hosts only" in capsys.readouterr().err
