"""Offline checks of autoscaling on in-flight requests: the KEDA ScaledObject of
deploy/k8s/components/keda-autoscaling, as the production overlay renders it.

The ScaledObject is validated against KEDA's own CRD schema (tests/deploy/crd_schemas, source
and commit in its README), closed as the API server's strict field validation closes it; broken
copies prove the validation rejects what the API server would. Then the policy: it replaces the
base HPA (never next to it) and keeps its CPU/memory targets, bounds and behaviour; its
Prometheus query is the one promtool tests (deploy/monitoring/tests/alerts_test.yml) and selects
this release's pods; its threshold is the one docs/deploy.md derives.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
from test_manifests import OVERLAYS, TARGETS, of_kind, render, yaml
from test_oip_manifests import crd_errors, one

REPO = Path(__file__).resolve().parents[2]
PROMTOOL_TESTS = REPO / "deploy" / "monitoring" / "tests" / "alerts_test.yml"
KEDA_OVERLAYS = ["overlays/production"]

# docs/deploy.md, "Autoscaling": one 2-CPU pod kept p99 <= 100 ms at 64 requests in flight
# (docs/performance.md, `make bench`, single rows at 64 connections); the target keeps the same
# 30 % headroom as the CPU target of 70 %.
IN_FLIGHT_AT_SLO = 64
HEADROOM = 0.7


def scaled_object(target: str = "overlays/production") -> dict[str, Any]:
    return one(render(target), "ScaledObject")


def triggers(so: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["type"]: t for t in so["spec"]["triggers"]}


@pytest.mark.parametrize("target", KEDA_OVERLAYS)
def test_scaled_object_validates_against_the_keda_schema(target: str) -> None:
    assert crd_errors(scaled_object(target)) == []


def _broken() -> dict[str, dict[str, Any]]:
    good = scaled_object()
    cases: dict[str, dict[str, Any]] = {}
    # Trigger metadata is a map of strings: an unquoted YAML number is refused.
    cases["threshold as a number"] = copy.deepcopy(good)
    for t in cases["threshold as a number"]["spec"]["triggers"]:
        if t["type"] == "prometheus":
            t["metadata"]["threshold"] = 45
    # The HPA's field names are not the ScaledObject's.
    cases["HPA spelling minReplicas"] = copy.deepcopy(good)
    cases["HPA spelling minReplicas"]["spec"]["minReplicas"] = 3
    cases["trigger without a type"] = copy.deepcopy(good)
    del cases["trigger without a type"]["spec"]["triggers"][0]["type"]
    cases["no triggers"] = copy.deepcopy(good)
    cases["no triggers"]["spec"]["triggers"] = []
    cases["scale target without a name"] = copy.deepcopy(good)
    del cases["scale target without a name"]["spec"]["scaleTargetRef"]["name"]
    cases["behaviour in the wrong place"] = copy.deepcopy(good)
    cases["behaviour in the wrong place"]["spec"]["behavior"] = good["spec"]["advanced"][
        "horizontalPodAutoscalerConfig"
    ]["behavior"]
    return cases


@pytest.mark.parametrize("case", sorted(_broken()))
def test_the_validation_rejects_a_broken_scaled_object(case: str) -> None:
    assert crd_errors(_broken()[case]), f"{case}: accepted"


@pytest.mark.parametrize("target", KEDA_OVERLAYS)
def test_the_scaled_object_replaces_the_base_hpa_and_keeps_its_targets(target: str) -> None:
    docs = render(target)
    assert not of_kind(docs, "HorizontalPodAutoscaler"), "KEDA's HPA and the base's would fight"
    so = scaled_object(target)
    (hpa,) = of_kind(render("base"), "HorizontalPodAutoscaler")
    spec = so["spec"]
    assert spec["scaleTargetRef"] == hpa["spec"]["scaleTargetRef"]
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (
        hpa["spec"]["minReplicas"],
        hpa["spec"]["maxReplicas"],
    )
    assert spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"] == hpa["spec"]["behavior"]
    base_targets = {
        m["resource"]["name"]: str(m["resource"]["target"]["averageUtilization"])
        for m in hpa["spec"]["metrics"]
    }
    found = triggers(so)
    assert set(found) == {"cpu", "memory", "prometheus"}
    for resource, value in base_targets.items():
        assert found[resource]["metricType"] == "Utilization", resource
        assert found[resource]["metadata"] == {"value": value}, resource


def _promtool_tested_query() -> str:
    tests = yaml.safe_load(PROMTOOL_TESTS.read_text())["tests"]
    (case,) = [t for t in tests if t["name"] == "KEDA in-flight trigger"]
    (expr,) = {e["expr"].strip() for e in case["promql_expr_test"]}
    return str(expr)


def test_the_in_flight_query_is_the_promtool_tested_one_on_this_release() -> None:
    so = scaled_object()
    prom = triggers(so)["prometheus"]
    query = prom["metadata"]["query"].strip()
    assert query == _promtool_tested_query()
    # AverageValue: KEDA's HPA divides the sum over the pods by their count.
    assert prom["metricType"] == "AverageValue"
    assert query.startswith("sum(") and "bentoml_service_request_in_progress{" in query
    # The selectors match what the pods are and where they run (a namespace the overlay
    # renames, or a track label the Deployment lacks, would make the query silently empty).
    matchers = dict(re.findall(r'(\w+)="([^"]*)"', query))
    deployment = one(render("overlays/production"), "Deployment")
    assert (
        matchers["namespace"] == so["metadata"]["namespace"] == deployment["metadata"]["namespace"]
    )
    assert deployment["metadata"]["name"] == so["spec"]["scaleTargetRef"]["name"]
    assert matchers["track"] == deployment["spec"]["template"]["metadata"]["labels"]["track"]
    (sm,) = of_kind(render("overlays/production"), "ServiceMonitor")
    assert "track" in sm["spec"]["podTargetLabels"], "the series need the pods' track label"
    assert matchers["job"] == sm["metadata"]["name"]  # the operator's job = the Service's name


def test_the_threshold_is_the_derived_one() -> None:
    threshold = triggers(scaled_object())["prometheus"]["metadata"]["threshold"]
    assert float(threshold) == round(IN_FLIGHT_AT_SLO * HEADROOM)


@pytest.mark.parametrize("target", TARGETS)
def test_the_scrape_keeps_bentoml_endpoint_label(target: str) -> None:
    """The operator's own `endpoint` target label (the port name) would rename BentoML's URL
    path to `exported_endpoint`, and every query on endpoint=~"/v1/.+" would match nothing."""
    (sm,) = of_kind(render(target), "ServiceMonitor")
    assert all(e.get("honorLabels") is True for e in sm["spec"]["endpoints"])


def test_overlays_without_keda_keep_the_cpu_hpa() -> None:
    for target in sorted(set(OVERLAYS) - set(KEDA_OVERLAYS)):
        docs = render(target)
        assert not of_kind(docs, "ScaledObject"), target
        assert of_kind(docs, "HorizontalPodAutoscaler"), target
