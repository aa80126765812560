"""Offline checks of the Open Inference Protocol deployments: deploy/k8s/kserve (a KServe
InferenceService) and deploy/k8s/seldon (a Seldon Core 2 Server + Model).

Rendered with the same tool as tests/deploy/test_manifests.py; the Kubernetes objects are
validated against the pinned Kubernetes schema, the three CRD kinds against their projects'
own openAPIV3Schema (tests/deploy/crd_schemas, source and commit in its README), closed the
way the API server's strict field validation closes them (an unknown field fails). Then the
policy: the predictor is the Deployment's container (image, env, probes, resources,
security), declares protocol v2, and its references resolve. Broken manifests prove that the
validation rejects what the API server or KServe's webhook would.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from test_manifests import (
    CRD_KINDS,
    CRD_SCHEMAS,
    KUBERNETES_VERSION,
    jsonschema,
    kubernetes_validate,
    of_kind,
    render,
)

SCHEMAS = Path(__file__).resolve().parent / "crd_schemas"
OIP_TARGETS = ["kserve", "seldon"]
OIP_KINDS = {
    ("serving.kserve.io/v1beta1", "InferenceService"),
    ("mlops.seldon.io/v1alpha1", "Model"),
    ("mlops.seldon.io/v1alpha1", "Server"),
}
# The values KServe's webhook accepts in a custom container's PROTOCOL variable
# (pkg/apis/serving/v1beta1/predictor_custom.go, validateCustomProtocol).
KSERVE_CUSTOM_PROTOCOLS = {"v1", "v2"}


def _closed(node: Any) -> Any:
    """A CRD structural schema as JSON Schema with unknown fields refused, as
    `kubectl apply` (server-side strict field validation) refuses them."""
    if isinstance(node, list):
        return [_closed(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _closed(v) for k, v in node.items()}
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


@cache
def crd_validator(kind: str) -> Any:
    schema = json.loads((SCHEMAS / f"{kind}.json").read_text())["openAPIV3Schema"]
    return jsonschema.Draft202012Validator(_closed(schema))


def crd_errors(obj: dict[str, Any]) -> list[str]:
    return [
        f"{obj['kind']}: {e.message} at {'/'.join(map(str, e.absolute_path))}"
        for e in crd_validator(obj["kind"]).iter_errors(obj)
    ]


def one(docs: tuple[dict[str, Any], ...], kind: str) -> dict[str, Any]:
    (obj,) = of_kind(docs, kind)
    return obj


def base_container() -> dict[str, Any]:
    """The production Deployment's container, the one the OIP objects must copy."""
    return one(render("overlays/production"), "Deployment")["spec"]["template"]["spec"][
        "containers"
    ][0]


def kserve_predictor() -> dict[str, Any]:
    return one(render("kserve"), "InferenceService")["spec"]["predictor"]


def seldon_container() -> dict[str, Any]:
    return one(render("seldon"), "Server")["spec"]["podSpec"]["containers"][0]


# --------------------------------------------------------------------------- schema


@pytest.mark.parametrize("target", OIP_TARGETS)
def test_objects_validate_against_their_schemas(target: str) -> None:
    errors = []
    for obj in render(target):
        key = (obj["apiVersion"], obj["kind"])
        if key in OIP_KINDS:
            errors += crd_errors(obj)
        elif key in CRD_KINDS:
            try:
                jsonschema.Draft202012Validator(CRD_SCHEMAS[obj["kind"]]).validate(obj)
            except jsonschema.ValidationError as e:
                errors.append(f"{obj['kind']}: {e.message}")
        else:
            try:
                kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
            except kubernetes_validate.ValidationError as e:
                errors.append(f"{obj['kind']}: {e.message}")
    assert not errors, "\n".join(errors)


def test_the_targets_render_the_platform_objects_instead_of_the_plain_release() -> None:
    kinds = {t: {d["kind"] for d in render(t)} for t in OIP_TARGETS}
    assert {"InferenceService", "ConfigMap", "ServiceMonitor", "PodDisruptionBudget"} <= kinds[
        "kserve"
    ]
    assert {"Server", "Model", "ConfigMap"} <= kinds["seldon"]
    for target, found in kinds.items():
        # KServe / Seldon make the pods, their Service and scaling: ours would compete.
        assert not found & {"Deployment", "HorizontalPodAutoscaler", "Service"}, target
        assert not [s for s in of_kind(render(target), "Secret")], f"{target}: Secret rendered"


def _broken_isvcs() -> dict[str, dict[str, Any]]:
    good = one(render("kserve"), "InferenceService")
    cases: dict[str, dict[str, Any]] = {}
    # The trap this layout avoids: `protocolVersion` exists on predictor.model, not on a
    # custom-container predictor.
    cases["protocolVersion on the predictor"] = copy.deepcopy(good)
    cases["protocolVersion on the predictor"]["spec"]["predictor"]["protocolVersion"] = "v2"
    cases["container without a name"] = copy.deepcopy(good)
    del cases["container without a name"]["spec"]["predictor"]["containers"][0]["name"]
    cases["unknown scale metric"] = copy.deepcopy(good)
    cases["unknown scale metric"]["spec"]["predictor"]["scaleMetric"] = "latency"
    cases["replicas as a string"] = copy.deepcopy(good)
    cases["replicas as a string"]["spec"]["predictor"]["minReplicas"] = "3"
    cases["no predictor"] = copy.deepcopy(good)
    del cases["no predictor"]["spec"]["predictor"]
    cases["misspelt probe field"] = copy.deepcopy(good)
    probe = cases["misspelt probe field"]["spec"]["predictor"]["containers"][0]["readinessProbe"]
    probe["periodSecond"] = probe.pop("periodSeconds")
    return cases


@pytest.mark.parametrize("case", sorted(_broken_isvcs()))
def test_a_broken_inference_service_is_rejected(case: str) -> None:
    assert crd_errors(_broken_isvcs()[case]), f"{case} passed the InferenceService schema"


def test_broken_seldon_objects_are_rejected() -> None:
    model = copy.deepcopy(one(render("seldon"), "Model"))
    del model["spec"]["storageUri"]
    assert crd_errors(model), "a Model without storageUri passed"
    server = copy.deepcopy(one(render("seldon"), "Server"))
    del server["spec"]["serverConfig"]
    assert crd_errors(server), "a Server without serverConfig passed"
    server = copy.deepcopy(one(render("seldon"), "Server"))
    server["spec"]["podSpec"]["containers"][0]["imagePullPolicy"] = 3
    assert crd_errors(server), "a container with a numeric imagePullPolicy passed"


# --------------------------------------------------------------------------- policy


def _protocol(container: dict[str, Any]) -> str | None:
    return {e["name"]: e.get("value") for e in container["env"]}.get("PROTOCOL")


def test_the_predictor_speaks_v2_and_a_wrong_protocol_is_refused() -> None:
    (container,) = kserve_predictor()["containers"]
    assert container["name"] == "kserve-container"
    assert _protocol(container) == "v2"
    assert _protocol(container) in KSERVE_CUSTOM_PROTOCOLS
    broken = copy.deepcopy(container)
    for e in broken["env"]:
        if e["name"] == "PROTOCOL":
            e["value"] = "v3"
    assert _protocol(broken) not in KSERVE_CUSTOM_PROTOCOLS


@pytest.mark.parametrize(
    "field",
    ["image", "envFrom", "resources", "securityContext", "volumeMounts", "livenessProbe"],
)
def test_the_predictor_container_is_the_deployments(field: str) -> None:
    (container,) = kserve_predictor()["containers"]
    assert container[field] == base_container()[field]
    if field in {"image", "envFrom", "resources", "securityContext", "volumeMounts"}:
        assert seldon_container()[field] == base_container()[field]


def test_the_predictor_probes_port_and_scaling_follow_the_base() -> None:
    predictor, base = kserve_predictor(), base_container()
    (container,) = predictor["containers"]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe] == base[probe]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["ports"][0] == {"name": "http", "containerPort": 3000, "protocol": "TCP"}
    # The base's CPU HPA (production carries the same bounds and CPU target into its KEDA
    # ScaledObject, test_autoscaling_manifests.py).
    hpa = one(render("base"), "HorizontalPodAutoscaler")
    cpu = {m["resource"]["name"]: m for m in hpa["spec"]["metrics"]}["cpu"]
    assert (predictor["minReplicas"], predictor["maxReplicas"]) == (
        hpa["spec"]["minReplicas"],
        hpa["spec"]["maxReplicas"],
    )
    assert (predictor["scaleMetric"], predictor["scaleTarget"]) == (
        "cpu",
        cpu["resource"]["target"]["averageUtilization"],
    )
    isvc = one(render("kserve"), "InferenceService")
    assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "RawDeployment"
    pod = one(render("overlays/production"), "Deployment")["spec"]["template"]["spec"]
    for field in ("securityContext", "volumes", "terminationGracePeriodSeconds"):
        assert predictor[field] == pod[field], field


@pytest.mark.parametrize("target", OIP_TARGETS)
def test_the_env_is_the_deployments_and_references_resolve(target: str) -> None:
    docs = render(target)
    container = kserve_predictor()["containers"][0] if target == "kserve" else seldon_container()
    extra = {"kserve": {"PROTOCOL"}, "seldon": {"PORT"}}[target]
    base_env = {e["name"]: e for e in base_container()["env"]}
    env = {e["name"]: e for e in container["env"]}
    assert set(env) == set(base_env) | extra
    for variable, entry in base_env.items():
        if variable != "DELIVERY_ETA_WORKERS":
            assert env[variable] == entry, variable
    # The worker count follows the CPU limit of the container that runs the service.
    ref = env["DELIVERY_ETA_WORKERS"]["valueFrom"]["resourceFieldRef"]
    assert ref["containerName"] == container["name"] and ref["resource"] == "limits.cpu"
    (config_map,) = of_kind(docs, "ConfigMap")
    assert container["envFrom"] == [{"configMapRef": {"name": config_map["metadata"]["name"]}}]
    assert config_map["data"]["DELIVERY_ETA_FEATURE_STORE_BACKEND"] == "redis"


def test_kserve_metrics_and_disruptions_reach_the_predictor_pods() -> None:
    docs = render("kserve")
    isvc = one(docs, "InferenceService")
    labels = {**isvc["metadata"]["labels"], "serving.kserve.io/inferenceservice": "delivery-eta"}
    monitor = one(docs, "ServiceMonitor")
    matched = monitor["spec"]["selector"]["matchLabels"]
    assert all(labels.get(k) == v for k, v in matched.items())
    # job = delivery-eta, as the recording rules and alerts expect.
    assert labels[monitor["spec"]["jobLabel"]] == "delivery-eta"
    assert {e["port"] for e in monitor["spec"]["endpoints"]} == {
        isvc["spec"]["predictor"]["containers"][0]["ports"][0]["name"]
    }
    pdb = one(docs, "PodDisruptionBudget")
    assert all(labels.get(k) == v for k, v in pdb["spec"]["selector"]["matchLabels"].items())


def test_the_seldon_model_is_scheduled_on_its_server() -> None:
    docs = render("seldon")
    model, server = one(docs, "Model"), one(docs, "Server")
    assert model["spec"]["server"] == server["metadata"]["name"]
    assert set(model["spec"]["requirements"]) <= set(server["spec"]["extraCapabilities"])
    assert {e["name"]: e.get("value") for e in seldon_container()["env"]}["PORT"] == "9000"
