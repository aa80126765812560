"""loadtest/shadow_cost/ without servers: its /metrics reading, run order, arguments and the
report from canned runs."""

from __future__ import annotations

import argparse

import pytest

from loadtest.bench.probes import metric_sum
from loadtest.shadow_cost.__main__ import parse_args
from loadtest.shadow_cost.configs import config_env, parse_configs, round_order
from loadtest.shadow_cost.counters import ShadowCounters
from loadtest.shadow_cost.report import paired_ratios, report
from loadtest.shadow_cost.runs import RunRecord

METRICS = """# HELP delivery_eta_shadow_rows_total Predicted rows ...
# TYPE delivery_eta_shadow_rows_total counter
delivery_eta_shadow_rows_total{outcome="scored"} 900.0
delivery_eta_shadow_rows_total{outcome="dropped_overload"} 100.0
delivery_eta_shadow_rows_total{outcome="failed"} 0.0
delivery_eta_model_inference_seconds_count{model_version="delivery_eta:a",role="champion"} 40.0
delivery_eta_model_inference_seconds_sum{model_version="delivery_eta:a",role="champion"} 0.5
delivery_eta_model_inference_seconds_count{model_version="delivery_eta:b",role="challenger"} 3.0
delivery_eta_model_inference_seconds_sum{model_version="delivery_eta:b",role="challenger"} 0.25
delivery_eta_model_inference_seconds_bucket{le="0.01",model_version="delivery_eta:b",role="challenger"} 1.0
"""


def test_metric_sum_filters_by_name_and_labels() -> None:
    assert metric_sum(METRICS, "delivery_eta_shadow_rows_total", outcome="scored") == 900
    assert metric_sum(METRICS, "delivery_eta_shadow_rows_total") == 1000  # all outcomes
    assert metric_sum(METRICS, "delivery_eta_model_inference_seconds_sum", role="champion") == 0.5
    assert metric_sum(METRICS, "delivery_eta_shadow_rows_total", outcome="nope") == 0


def test_counters_over_a_run_are_differences() -> None:
    after = ShadowCounters.from_metrics(METRICS)
    before = ShadowCounters.from_metrics(METRICS.replace("900.0", "400.0"))
    delta = after.minus(before)
    assert delta.rows["scored"] == 500
    assert delta.rows["dropped_overload"] == 0
    assert delta.calls == {"champion": 0, "challenger": 0}
    assert after.calls["challenger"] == 3 and after.call_s["challenger"] == 0.25


def test_configurations_and_alternating_order() -> None:
    assert parse_configs("on-nice0, on,off") == ["off", "on-nice0", "on"]
    for bad in ("on", "off", "off,on,on", "off,loud"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_configs(bad)
    assert round_order(["off", "on"], 0) == ["off", "on"]
    assert round_order(["off", "on"], 1) == ["on", "off"]
    assert config_env("off", "delivery_eta:b", 1.0) == {}
    assert config_env("on", "delivery_eta:b", 0.5) == {
        "DELIVERY_ETA_SHADOW_MODEL_TAG": "delivery_eta:b",
        "DELIVERY_ETA_SHADOW_FRACTION": "0.5",
    }
    assert config_env("on-nice0", "delivery_eta:b", 1.0)["DELIVERY_ETA_SHADOW_NICE"] == "0"


def test_arguments() -> None:
    args = parse_args(["--rounds", "2", "--jobs", "single"])
    assert args.configs == ["off", "on"] and args.jobs == ["single"] and args.fraction == 1.0
    for bad in (["--model-tag", "delivery_eta:a"], ["--fraction", "0"], ["--jobs", "multi"]):
        with pytest.raises(SystemExit):
            parse_args(bad)


def _run(round_: int, job: str, config: str, rps: float, p50: float, scored: float) -> RunRecord:
    requests = int(rps * 8)
    rows = requests * (1000 if job == "batch" else 1)
    counters = ShadowCounters(
        rows={"scored": scored * rows, "dropped_overload": (1 - scored) * rows}
        if config != "off"
        else {},
        calls={"champion": requests / 10, "challenger": 0.0 if config == "off" else 160.0},
        call_s={"champion": 0.4, "challenger": 0.0 if config == "off" else 0.2},
    )
    return RunRecord(
        round=round_,
        job=job,
        config=config,
        requests=requests,
        rps=rps,
        p50_ms=p50,
        p99_ms=4 * p50,
        non_2xx=0,
        socket_errors=0,
        server_cpu_s=requests * 0.0015,
        other_cpu_s=1.0,
        shadow_thread_cpu_s=0.1 if config != "off" else 0.0,
        counters=counters,
    )


def test_report_ratios_spread_and_verdicts() -> None:
    records = [
        _run(0, "single", "off", 1000, 30.0, 0),
        _run(0, "single", "on", 900, 33.0, 1.0),
        _run(1, "single", "on", 1000, 30.0, 1.0),
        _run(1, "single", "off", 1000, 30.0, 0),
        _run(0, "batch", "off", 50, 100.0, 0),
        _run(0, "batch", "on", 50, 100.0, 0.04),
    ]
    assert paired_ratios(records, "single", "on", "rps") == [0.9, 1.0]
    text = "\n".join(report(records, ["off", "on"], 1.0))
    # medians: off 1000, on 950 -> 0.95x, paired 0.90 and 1.00
    assert "| single @64 | on | 0.950x (0.90-1.00), 0.950x |" in text
    assert "single on: throughput cost +5.0 % (within the 5 % budget);" in text
    assert "paired ratios straddle 1.0" in text
    # a shadow that dropped its rows: the table and the verdict say so
    assert "| 4.0 % (96.0 %, 0.0 %; 0.0 %) |" in text
    assert "the shadow scored only 4 % of the rows: not its cost" in text


def test_quiet_rounds_table_keeps_only_pairs_without_other_load() -> None:
    records = [
        _run(0, "single", "off", 1000, 30.0, 0),
        _run(0, "single", "on", 900, 33.0, 1.0),
        _run(1, "single", "on", 1000, 30.0, 1.0),
        _run(1, "single", "off", 1000, 30.0, 0),
    ]
    records[0].other_cpu_s = 8.0  # round 0 shared the machine with a test suite
    for record in records[1:]:
        record.other_cpu_s = 0.2
    text = "\n".join(report(records, ["off", "on"], 1.0))
    assert "| single @64 | on | 1 | 1.000x (1.00-1.00) |" in text
