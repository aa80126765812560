"""Checks of the monitoring bundle in deploy/monitoring (no running service needed).

1. promtool: both rule files and prometheus.yml are valid, and the rule unit tests in
   deploy/monitoring/tests/alerts_test.yml pass (every alert fires on one input and stays
   silent on another; recording rules give hand-computed values).
2. Every alert has `for:`, a page/ticket severity, summary/description, a runbook_url
   pointing at its own section of docs/runbooks.md, and that section exists.
3. The Grafana dashboard parses, uses the `${DS_PROMETHEUS}` datasource and the
   `model_version` variable, its PromQL parses (via promtool), and it - like the rules -
   mentions only metrics of the service's metric contract or recording rules defined here.
4. Champion / challenger (issue 14): every rule and panel that reads a metric with a `role`
   label either selects a role or keeps `role` in its result, so a challenger's rows never
   mix into the served model's numbers.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
MONITORING = REPO / "deploy" / "monitoring"
RECORDING = MONITORING / "rules" / "recording.yml"
ALERTS = MONITORING / "rules" / "alerts.yml"
PROMETHEUS_YML = MONITORING / "prometheus.yml"
UNIT_TESTS = MONITORING / "tests" / "alerts_test.yml"
DASHBOARD = MONITORING / "grafana" / "delivery-eta.json"
RUNBOOKS = REPO / "docs" / "runbooks.md"

# Alerts the issue requires (more may exist; each needs the same treatment).
REQUIRED_ALERTS = {
    "DeliveryEtaHigh5xxRate",
    "DeliveryEtaP99LatencyHigh",
    "DeliveryEtaValidationErrorRateHigh",
    "DeliveryEtaDown",
    "DeliveryEtaFeatureDrift",
    "DeliveryEtaPredictionDrift",
    "DeliveryEtaOnlineMaeDegraded",
    "DeliveryEtaFeatureStoreFallbacks",
    # issue #12: the prediction log that labels join to
    "DeliveryEtaPredictionLogDown",
    "DeliveryEtaPredictionLogDroppingRecords",
    "DeliveryEtaPredictionLogEvictingBeforeRetention",
    # issue #14: shadow model (champion vs challenger) and cohorts
    "DeliveryEtaChallengerMuchWorse",
    "DeliveryEtaShadowDropping",
    "DeliveryEtaShadowFailing",
    "DeliveryEtaCohortIntervalCoverageLow",
}

# The metric contract: what the service exports on /metrics (BentoML 1.4 built-ins and the
# delivery_eta_* metrics), plus Prometheus' own `up`. A rule or panel naming anything else
# is a typo or a metric nobody exports. Written out here rather than read from
# serving/telemetry/metrics.py, so the bundle is checked against the contract it was
# written for (issue 14's names: /work/shared/shadow_contract.md, as agreed with serving).
_COUNTERS = [
    "bentoml_service_request_total",
    "delivery_eta_validation_errors_total",
    "delivery_eta_errors_total",
    "delivery_eta_feature_lookups_total",
    "delivery_eta_feature_store_fallbacks_total",
    "delivery_eta_predictions_clamped_total",
    "delivery_eta_feedback_total",
    "delivery_eta_interval_hits_total",
    "delivery_eta_prediction_log_records_total",
    "delivery_eta_prediction_log_evicted_rows_total",
    "delivery_eta_http_refusals_total",
    # issue 14
    "delivery_eta_shadow_rows_total",
    "delivery_eta_cohort_interval_hits_total",
]
_GAUGES = [
    "up",
    "bentoml_service_request_in_progress",
    "delivery_eta_feature_psi",
    "delivery_eta_prediction_psi",
    "delivery_eta_model_info",
    "delivery_eta_model_training_mae_minutes",
    "delivery_eta_prediction_log_up",
    "delivery_eta_prediction_log_queue_rows",
    "delivery_eta_prediction_log_size_bytes",
    # issue 14
    "delivery_eta_shadow_queue_rows",
    "delivery_eta_cohort_prediction_psi",
    "delivery_eta_cohort_mix_psi",
]
_HISTOGRAMS = [
    "bentoml_service_request_duration_seconds",
    "bentoml_service_adaptive_batch_size",
    "delivery_eta_predicted_delivery_time_minutes",
    "delivery_eta_interval_width_minutes",
    "delivery_eta_model_batch_rows",
    "delivery_eta_feature_store_latency_seconds",
    "delivery_eta_online_absolute_error_minutes",
    # issue 14
    "delivery_eta_shadow_absolute_difference_minutes",
    "delivery_eta_model_inference_seconds",
    "delivery_eta_model_inference_row_seconds",
    "delivery_eta_cohort_predicted_delivery_time_minutes",
    "delivery_eta_cohort_online_absolute_error_minutes",
]
CONTRACT_METRICS = frozenset(
    _COUNTERS + _GAUGES + [f"{h}_{s}" for h in _HISTOGRAMS for s in ("bucket", "sum", "count")]
)

# Metrics with a `role` label (champion = what clients got, challenger = the shadow model).
ROLE_METRICS = (
    "delivery_eta_predicted_delivery_time_minutes",
    "delivery_eta_interval_width_minutes",
    "delivery_eta_online_absolute_error_minutes",
    "delivery_eta_interval_hits_total",
    "delivery_eta_model_info",
    "delivery_eta_model_inference_seconds",
    "delivery_eta_model_inference_row_seconds",
    "delivery_eta_cohort_predicted_delivery_time_minutes",
    "delivery_eta_cohort_online_absolute_error_minutes",
    "delivery_eta_cohort_interval_hits_total",
)

# Recording rules that predate the check that every rule has a promql_expr_test. Shrink it;
# never add to it.
UNTESTED_LEGACY_RULES = {
    "job_backend:delivery_eta_feature_store_latency_seconds:quantile_rate5m",
    "job_endpoint_le:bentoml_service_request_duration_seconds_bucket:rate5m",
    "job_feature_source:delivery_eta_feature_lookups:rate5m",
    "job_model_version_bound:delivery_eta_predictions_clamped:rate5m",
    "job_model_version_result:delivery_eta_feedback:rate5m",
    "job_route_category:delivery_eta_errors:rate5m",
}

# Panels that deliberately do not filter by model version: job-wide figures (the shadow loss
# ratios are what the DeliveryEtaShadow* alerts read, for the whole job).
UNFILTERED_PANELS = {"Targets up", "Shadow loss ratios (alert inputs)"}


# --------------------------------------------------------------------------- helpers
@cache
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(
            "promtool not found on PATH: run `make system-deps` "
            "(it comes with Debian's `prometheus` package)",
            pytrace=False,
        )
    return path


def run_promtool(*args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [promtool(), *args], cwd=REPO, capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0, (
        f"`promtool {' '.join(args)}` exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    )
    return proc


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def alert_rules() -> list[dict[str, Any]]:
    return [r for g in load_yaml(ALERTS)["groups"] for r in g["rules"] if "alert" in r]


def recording_rules() -> list[dict[str, Any]]:
    return [r for g in load_yaml(RECORDING)["groups"] for r in g["rules"] if "record" in r]


def recorded_names() -> set[str]:
    return {r["record"] for r in recording_rules()}


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def panel_targets() -> list[tuple[str, str]]:
    """(panel title, PromQL) for every query of every panel, rows' nested panels included."""
    out = []
    stack = list(dashboard()["panels"])
    while stack:
        panel = stack.pop(0)
        stack.extend(panel.get("panels", []))
        for target in panel.get("targets", []):
            out.append((panel["title"], target["expr"]))
    return out


def grafana_to_promql(expr: str) -> str:
    """Replace Grafana's variables with values Prometheus accepts."""
    return (
        expr.replace("$__rate_interval", "5m")
        .replace("$__interval", "1m")
        .replace("${model_version}", ".*")
        .replace("$model_version", ".*")
        .replace("${role}", "champion|challenger")
        .replace("$role", "champion|challenger")
    )


_KEYWORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
    "bool", "offset", "inf", "nan", "atan2",
}  # fmt: skip


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (a lexer good enough for our expressions).

    Removes strings, label matchers, range/subquery brackets, grouping label lists and
    numbers; what is left and is not followed by "(" (a function or aggregation) nor a
    keyword is a metric name.
    """
    s = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    s = re.sub(r"'(?:[^'\\]|\\.)*'", "''", s)
    s = re.sub(r"`[^`]*`", "``", s)
    s = re.sub(r"\{[^}]*\}", " ", s)
    s = re.sub(r"\[[^\]]*\]", " ", s)
    s = re.sub(r"\boffset\s+-?[0-9a-z_]+", " ", s)
    s = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)
    s = re.sub(r"(?<![\w:.])\d+(?:\.\d+)?(?:[eE][+-]?\d+)?(?![\w:])", " ", s)
    names = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", s):
        token = m.group()
        if token.lower() in _KEYWORDS or s[m.end() :].lstrip().startswith("("):
            continue
        names.add(token)
    return names


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a markdown heading."""
    anchor = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return anchor.replace(" ", "-")


def runbook_sections() -> dict[str, str]:
    """`## Heading` -> section text, from docs/runbooks.md."""
    sections: dict[str, str] = {}
    current = None
    for line in RUNBOOKS.read_text().splitlines():
        m = re.match(r"^##\s+(.+?)\s*$", line)
        if m:
            current = m.group(1)
            sections[current] = ""
        elif current is not None:
            sections[current] += line + "\n"
    return sections


# --------------------------------------------------------------------------- promtool
@pytest.mark.parametrize("rule_file", [RECORDING, ALERTS], ids=lambda p: p.name)
def test_promtool_check_rules(rule_file: Path) -> None:
    out = run_promtool("check", "rules", str(rule_file.relative_to(REPO)))
    assert "SUCCESS" in out.stdout


def test_promtool_check_config() -> None:
    out = run_promtool("check", "config", str(PROMETHEUS_YML.relative_to(REPO)))
    assert "SUCCESS" in out.stdout + out.stderr


def test_promtool_rule_unit_tests() -> None:
    out = run_promtool("test", "rules", str(UNIT_TESTS.relative_to(REPO)))
    assert "SUCCESS" in out.stdout + out.stderr


# --------------------------------------------------------------------------- scrape config
def test_scrape_config_targets_the_service() -> None:
    config = load_yaml(PROMETHEUS_YML)
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "delivery-eta"]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    assert job.get("scrape_interval", config["global"].get("scrape_interval")) == "15s"
    targets = [t for sc in job["static_configs"] for t in sc["targets"]]
    assert targets == ["127.0.0.1:3000"]
    rule_files = {(PROMETHEUS_YML.parent / f).resolve() for f in config["rule_files"]}
    assert rule_files == {RECORDING.resolve(), ALERTS.resolve()}


# --------------------------------------------------------------------------- alerts
def test_required_alerts_exist_once() -> None:
    names = [r["alert"] for r in alert_rules()]
    assert len(names) == len(set(names)), f"duplicate alert names: {names}"
    missing = REQUIRED_ALERTS - set(names)
    assert not missing, f"alerts missing from {ALERTS.name}: {sorted(missing)}"


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda r: r["alert"])
def test_alert_has_for_severity_and_annotations(rule: dict[str, Any]) -> None:
    name = rule["alert"]
    assert re.fullmatch(r"\d+[smh]", str(rule.get("for", ""))), f"{name}: needs a `for:` window"
    assert rule.get("labels", {}).get("severity") in {"page", "ticket"}, (
        f"{name}: labels.severity must be page or ticket"
    )
    annotations = rule.get("annotations", {})
    for key in ("summary", "description", "runbook_url"):
        assert annotations.get(key), f"{name}: annotation {key} missing"
    assert annotations["runbook_url"] == f"docs/runbooks.md#{name.lower()}", (
        f"{name}: runbook_url must point at its own section"
    )


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda r: r["alert"])
def test_alert_has_runbook_section(rule: dict[str, Any]) -> None:
    name = rule["alert"]
    sections = runbook_sections()
    assert name in sections, f"docs/runbooks.md has no `## {name}` section"
    assert github_anchor(name) == rule["annotations"]["runbook_url"].split("#", 1)[1]
    text = sections[name].lower()
    for part in ("what it means", "first checks", "mitigation", "escalate"):
        assert part in text, f"runbook section {name} lacks '{part}'"


def test_runbooks_have_no_section_for_unknown_alerts() -> None:
    alerts = {r["alert"] for r in alert_rules()}
    stray = {h for h in runbook_sections() if h.startswith("DeliveryEta") and h not in alerts}
    assert not stray, f"runbook sections for alerts that do not exist: {sorted(stray)}"


def test_every_alert_has_firing_and_silent_unit_tests() -> None:
    fired: set[str] = set()
    silent: set[str] = set()
    for case in load_yaml(UNIT_TESTS)["tests"]:
        for check in case.get("alert_rule_test", []):
            (fired if check.get("exp_alerts") else silent).add(check["alertname"])
            for exp in check.get("exp_alerts") or []:
                assert exp.get("exp_labels", {}).get("severity"), (
                    f"{check['alertname']}: a firing case must assert the labels"
                )
                assert exp.get("exp_annotations", {}).get("runbook_url"), (
                    f"{check['alertname']}: a firing case must assert the annotations"
                )
    alerts = {r["alert"] for r in alert_rules()}
    assert not alerts - fired, f"alerts never fired in {UNIT_TESTS.name}: {alerts - fired}"
    assert not alerts - silent, f"alerts without a must-not-fire case: {alerts - silent}"


def test_recording_rules_are_unit_tested() -> None:
    tested = set().union(
        *(
            metric_names(check["expr"])
            for case in load_yaml(UNIT_TESTS)["tests"]
            for check in case.get("promql_expr_test", [])
        )
    )
    untested = recorded_names() - tested - UNTESTED_LEGACY_RULES
    assert not untested, f"recording rules without a promql_expr_test: {sorted(untested)}"
    stale = UNTESTED_LEGACY_RULES & tested
    assert not stale, f"tested now, remove from UNTESTED_LEGACY_RULES: {sorted(stale)}"


def test_recording_rules_used_by_alerts_are_unit_tested() -> None:
    tested = set().union(
        *(
            metric_names(check["expr"])
            for case in load_yaml(UNIT_TESTS)["tests"]
            for check in case.get("promql_expr_test", [])
        )
    )
    used_by_alerts = set().union(*(metric_names(r["expr"]) for r in alert_rules()))
    untested = (used_by_alerts & recorded_names()) - tested
    assert not untested, f"recording rules read by alerts without a promql_expr_test: {untested}"


# --------------------------------------------------------------------------- metric names
def test_metric_name_lexer() -> None:
    expr = (
        "histogram_quantile(0.99, sum by (le) "
        '(rate(foo_bucket{job="x",le=~"1e3"}[$__rate_interval])))'
        ' / ignoring (source) group_left sum without (a) (a:b:c{x="y"} offset 5m) * 1.2e3'
        " and on (job) bar > bool 2"
    )
    assert metric_names(grafana_to_promql(expr)) == {"foo_bucket", "a:b:c", "bar"}


def test_recording_rule_names_follow_the_convention() -> None:
    for name in recorded_names():
        assert re.fullmatch(r"[a-z_]+:[a-z0-9_]+:[a-z0-9_]+", name), name


@pytest.mark.parametrize(
    "rule",
    recording_rules() + alert_rules(),
    ids=lambda r: r.get("record") or r["alert"],
)
def test_rules_use_only_contract_or_recorded_metrics(rule: dict[str, Any]) -> None:
    unknown = metric_names(rule["expr"]) - CONTRACT_METRICS - recorded_names()
    assert not unknown, f"unknown metric names {sorted(unknown)} in {rule['expr']}"


# --------------------------------------------------------------------------- roles
def role_unsafe_selectors(expr: str) -> list[str]:
    """Selectors of role-labelled metrics that neither match on `role` nor keep it.

    Every selector of a ROLE_METRICS metric needs a `role` matcher, unless the expression
    groups by `role` (then the roles stay apart in the result).
    """
    if re.search(r"\bby\s*\([^)]*\brole\b[^)]*\)", expr):
        return []
    bad = []
    names = "|".join(ROLE_METRICS)
    pattern = rf"(?<![\w:])(?:{names})(?:_bucket|_sum|_count)?(?![\w:])(\{{[^}}]*\}})?"
    for m in re.finditer(pattern, expr):
        if not re.search(r"\brole\s*(?:=|!=|=~|!~)", m.group(1) or ""):
            bad.append(m.group(0))
    return bad


def test_role_selector_check() -> None:
    assert role_unsafe_selectors('sum(rate(delivery_eta_interval_hits_total{job="x"}[5m]))')
    assert role_unsafe_selectors("max by (job, instance) (delivery_eta_model_info)")
    assert not role_unsafe_selectors('delivery_eta_model_info{job="x",role!="challenger"}')
    assert not role_unsafe_selectors(
        "sum by (job, role, le) (rate(delivery_eta_model_inference_seconds_bucket[5m]))"
    )
    assert not role_unsafe_selectors('rate(delivery_eta_shadow_rows_total{job="x"}[5m])')
    # A recording rule named after a role metric is not the metric.
    assert not role_unsafe_selectors(
        "histogram_quantile(0.5, job_role_le:delivery_eta_model_inference_seconds_bucket:rate5m)"
    )


@pytest.mark.parametrize(
    "rule",
    recording_rules() + alert_rules(),
    ids=lambda r: r.get("record") or r["alert"],
)
def test_rules_never_mix_champion_and_challenger(rule: dict[str, Any]) -> None:
    bad = role_unsafe_selectors(rule["expr"])
    assert not bad, f'select a role (role!="challenger" for the served model): {bad}'


def test_dashboard_queries_never_mix_champion_and_challenger() -> None:
    bad = [(title, role_unsafe_selectors(expr)) for title, expr in panel_targets()]
    bad = [(title, sel) for title, sel in bad if sel]
    assert not bad, f"panels reading role-labelled metrics without a role: {bad}"


# --------------------------------------------------------------------------- dashboard
def test_dashboard_structure() -> None:
    dash = dashboard()
    assert 36 <= dash["schemaVersion"] <= 41
    assert dash["uid"] == "delivery-eta"
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    assert variables["DS_PROMETHEUS"]["query"] == "prometheus"
    model_version = variables["model_version"]
    assert model_version["type"] == "query"
    assert "delivery_eta_model_info" in json.dumps(model_version["query"])
    assert model_version["includeAll"] and model_version["allValue"] == ".*"

    ids = []
    stack = list(dash["panels"])
    while stack:
        panel = stack.pop(0)
        stack.extend(panel.get("panels", []))
        ids.append(panel["id"])
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}, panel
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${DS_PROMETHEUS}"
    assert len(ids) == len(set(ids)), "panel ids must be unique"


def test_dashboard_covers_the_required_views() -> None:
    text = DASHBOARD.read_text()
    for needle in (
        "bentoml_service_request",  # traffic
        "code_class",  # errors by status class
        "category",  # errors by category
        "bentoml_service_request_duration_seconds",  # latency percentiles
        "bentoml_service_adaptive_batch_size",  # batch size
        "delivery_eta_predicted_delivery_time_minutes",  # prediction distribution
        "delivery_eta_interval_width_minutes",  # interval width
        "delivery_eta_feature_psi",  # drift per feature
        "delivery_eta_online_mae_minutes",  # online MAE
        "delivery_eta_model_training_mae_minutes",  # ... vs training MAE
        "delivery_eta_feature_lookups",  # feature source mix
        "delivery_eta_prediction_log_up",  # prediction log health (issue #12)
        "delivery_eta_prediction_log_records",  # ... written / sampled / dropped
        "delivery_eta_prediction_log_queue_rows",  # ... queue
        "delivery_eta_prediction_log_size_bytes",  # ... size vs its cap
        "delivery_eta_prediction_log_evicted_rows_total",  # ... evictions by reason
        "delivery_eta_http_refusals_total",  # HTTP edge refusals by reason
        "unauthorized|unavailable",  # 401s and feedback 503s
        # issue 14: champion vs challenger, cohorts, inference vs request latency
        "job_model_version_role:delivery_eta_online_mae_minutes:ratio_rate1h",
        "job_model_version_role:delivery_eta_interval_coverage:ratio_rate1h",
        "delivery_eta_challenger_vs_champion_online_mae",
        "delivery_eta_shadow_absolute_difference_minutes",
        "delivery_eta_shadow_rows",
        "delivery_eta_shadow_queue_rows",
        "delivery_eta_model_inference_seconds",
        "delivery_eta_model_inference_row_seconds",
        "job_model_version_role_cohort:delivery_eta_online_mae_minutes:ratio_rate1h",
        "job_model_version_role_cohort:delivery_eta_interval_coverage:ratio_rate1h",
        "job_model_version_role_cohort:delivery_eta_predicted_delivery_time_minutes",
        "delivery_eta_cohort_prediction_psi",
        "delivery_eta_cohort_mix_psi",
    ):
        assert needle in text, f"dashboard has no panel on {needle}"


@pytest.mark.parametrize("title,expr", panel_targets(), ids=lambda x: str(x)[:60])
def test_dashboard_query_uses_known_metrics_and_model_filter(title: str, expr: str) -> None:
    names = metric_names(grafana_to_promql(expr))
    assert names, f"panel {title!r}: no metric in {expr}"
    unknown = names - CONTRACT_METRICS - recorded_names()
    assert not unknown, f"panel {title!r} uses unknown metric names {sorted(unknown)}: {expr}"
    if title not in UNFILTERED_PANELS:
        assert "$model_version" in expr, f"panel {title!r} is not filtered by model version"


def test_dashboard_promql_parses(tmp_path: Path) -> None:
    """promtool parses every panel query (written out as recording rules)."""
    rules = [
        {"record": f"dashboard:query_{i}:check", "expr": grafana_to_promql(expr)}
        for i, (_, expr) in enumerate(panel_targets())
    ]
    path = tmp_path / "dashboard_queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    run_promtool("check", "rules", str(path))


def test_kubernetes_prometheusrule_is_rendered_from_the_rule_files() -> None:
    rendered = subprocess.run(
        [sys.executable, str(REPO / "deploy/monitoring/render_prometheusrule.py")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    committed = (REPO / "deploy/k8s/base/shared/prometheusrule.yaml").read_text()
    assert committed == rendered, "run `make k8s-rules` after editing deploy/monitoring/rules"
