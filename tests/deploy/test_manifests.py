"""Offline checks of the Kubernetes manifests in deploy/k8s (no cluster needed).

For the base and every overlay:
  1. `kubectl kustomize` (or `kustomize build`) renders it;
  2. every rendered object validates against the Kubernetes OpenAPI schema of a
     pinned Kubernetes version (kubernetes-validate, strict: unknown fields fail);
     the two Prometheus Operator CRDs (ServiceMonitor, PrometheusRule) have no
     schema in that package, so they are checked against the structural subset of
     the operator's CRD schema written below instead;
  3. policy: probes, requests/limits, non-root, read-only root FS, pinned image
     tags, rollout strategy, references that resolve, and the traffic shape each
     overlay promises (canary share, blue/green selector).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections import Counter
from functools import cache
from pathlib import Path
from typing import Any

import pytest

yaml = pytest.importorskip("yaml")
kubernetes_validate = pytest.importorskip("kubernetes_validate")
jsonschema = pytest.importorskip("jsonschema")

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"

# The Kubernetes minor version the manifests are written for (and validated
# against). Raise it deliberately, together with the cluster.
KUBERNETES_VERSION = os.environ.get("DEPLOY_K8S_VERSION", "1.33.0")

OVERLAYS = sorted(
    f"overlays/{p.name}"
    for p in (K8S / "overlays").iterdir()
    if (p / "kustomization.yaml").exists()
)
TARGETS = ["base", *OVERLAYS]

CRD_KINDS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
}
# Validated against KEDA's own CRD schema in tests/deploy/test_autoscaling_manifests.py.
KEDA_KINDS = {("keda.sh/v1alpha1", "ScaledObject")}


# --------------------------------------------------------------------------- render


def _kustomize_cmd() -> list[str] | None:
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    return None


@cache
def render(target: str) -> tuple[dict[str, Any], ...]:
    cmd = _kustomize_cmd()
    if cmd is None:
        pytest.skip("neither kubectl nor kustomize is on PATH; cannot render the manifests")
    proc = subprocess.run([*cmd, str(K8S / target)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"{' '.join(cmd)} {target} failed:\n{proc.stderr}"
    docs = tuple(d for d in yaml.safe_load_all(proc.stdout) if d)
    assert docs, f"{target} rendered no objects"
    return docs


def of_kind(docs: tuple[dict[str, Any], ...], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def name(obj: dict[str, Any]) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


@pytest.mark.parametrize("target", TARGETS)
def test_renders(target: str) -> None:
    docs = render(target)
    ids = Counter((d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]) for d in docs)
    dupes = [k for k, n in ids.items() if n > 1]
    assert not dupes, f"duplicate objects in {target}: {dupes}"


def test_every_overlay_is_tested() -> None:
    # A new overlay directory is picked up by the glob above; this guards the glob.
    assert {"overlays/production", "overlays/canary", "overlays/blue-green"} <= set(OVERLAYS)


# --------------------------------------------------------------------------- schema

# Structural subset of the Prometheus Operator CRD schemas (monitoring.coreos.com/v1)
# for the fields these manifests use; additionalProperties is closed where the CRD
# is closed, so a typo such as `intervall:` fails here as it would on the API server.
_DURATION = {
    "type": "string",
    "pattern": (
        r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?"
        r"(([0-9]+)ms)?)$"
    ),
}
_LABEL_SELECTOR = {
    "type": "object",
    "properties": {
        "matchLabels": {"type": "object", "additionalProperties": {"type": "string"}},
        "matchExpressions": {"type": "array"},
    },
    "additionalProperties": False,
}
_METADATA = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
        "namespace": {"type": "string"},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}
CRD_SCHEMAS: dict[str, dict[str, Any]] = {
    "ServiceMonitor": {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "metadata": _METADATA,
            "spec": {
                "type": "object",
                "required": ["selector", "endpoints"],
                "additionalProperties": False,
                "properties": {
                    "selector": _LABEL_SELECTOR,
                    "namespaceSelector": {"type": "object"},
                    "jobLabel": {"type": "string"},
                    "podTargetLabels": {"type": "array", "items": {"type": "string"}},
                    "targetLabels": {"type": "array", "items": {"type": "string"}},
                    "endpoints": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {
                                "port": {"type": "string"},
                                "targetPort": {"type": ["string", "integer"]},
                                "path": {"type": "string", "pattern": "^/"},
                                "scheme": {"enum": ["http", "https"]},
                                "interval": _DURATION,
                                "scrapeTimeout": _DURATION,
                                "honorLabels": {"type": "boolean"},
                                "relabelings": {"type": "array"},
                                "authorization": {
                                    "type": "object",
                                    "required": ["credentials"],
                                    "additionalProperties": False,
                                    "properties": {
                                        "type": {"type": "string"},
                                        "credentials": {
                                            "type": "object",
                                            "required": ["name", "key"],
                                            "additionalProperties": False,
                                            "properties": {
                                                "name": {"type": "string"},
                                                "key": {"type": "string"},
                                                "optional": {"type": "boolean"},
                                            },
                                        },
                                    },
                                },
                                "metricRelabelings": {"type": "array"},
                            },
                        },
                    },
                },
            },
        },
    },
    "PrometheusRule": {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "metadata": _METADATA,
            "spec": {
                "type": "object",
                "required": ["groups"],
                "additionalProperties": False,
                "properties": {
                    "groups": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["name", "rules"],
                            "additionalProperties": False,
                            "properties": {
                                "name": {"type": "string", "minLength": 1},
                                "interval": _DURATION,
                                "rules": {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "required": ["expr"],
                                        "additionalProperties": False,
                                        "oneOf": [
                                            {"required": ["alert"]},
                                            {"required": ["record"]},
                                        ],
                                        "properties": {
                                            "alert": {"type": "string"},
                                            "record": {"type": "string"},
                                            "expr": {"type": "string", "minLength": 1},
                                            "for": _DURATION,
                                            "keep_firing_for": _DURATION,
                                            "labels": {
                                                "type": "object",
                                                "additionalProperties": {"type": "string"},
                                            },
                                            "annotations": {
                                                "type": "object",
                                                "additionalProperties": {"type": "string"},
                                            },
                                        },
                                    },
                                },
                            },
                        },
                    }
                },
            },
        },
    },
}


@pytest.mark.parametrize("target", TARGETS)
def test_objects_validate_against_kubernetes_schema(target: str) -> None:
    errors = []
    for obj in render(target):
        if (obj["apiVersion"], obj["kind"]) in CRD_KINDS:
            continue  # test_crd_objects_validate_structurally
        if (obj["apiVersion"], obj["kind"]) in KEDA_KINDS:
            continue  # test_autoscaling_manifests.py
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            errors.append(f"{name(obj)}: {e.message} at {'/'.join(map(str, e.path))}")
        except kubernetes_validate.SchemaNotFoundError:
            errors.append(
                f"{name(obj)}: no Kubernetes {KUBERNETES_VERSION} schema for {obj['apiVersion']}"
            )
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize("target", TARGETS)
def test_crd_objects_validate_structurally(target: str) -> None:
    crds = [d for d in render(target) if (d["apiVersion"], d["kind"]) in CRD_KINDS]
    assert {d["kind"] for d in crds} == {"ServiceMonitor", "PrometheusRule"}
    for obj in crds:
        jsonschema.Draft202012Validator(CRD_SCHEMAS[obj["kind"]]).validate(obj)


def _balanced(expr: str) -> bool:
    depth = 0
    for ch in re.sub(r'"[^"]*"', "", expr):
        depth += {"(": 1, ")": -1, "{": 1, "}": -1, "[": 1, "]": -1}.get(ch, 0)
        if depth < 0:
            return False
    return depth == 0


def test_prometheus_rules_use_bentoml_metrics() -> None:
    (rule,) = of_kind(render("overlays/production"), "PrometheusRule")
    rules = [r for g in rule["spec"]["groups"] for r in g["rules"]]
    assert len(rules) >= 2
    exprs = " ".join(r["expr"] for r in rules)
    assert "bentoml_service_request_total" in exprs
    assert "bentoml_service_request_duration_seconds_bucket" in exprs
    for r in rules:
        assert _balanced(r["expr"]), f"unbalanced brackets in {r.get('alert')}: {r['expr']}"
        if "alert" in r:
            assert r["labels"]["severity"] in {"page", "ticket"}
            assert r["annotations"].get("summary")


# --------------------------------------------------------------------------- policy

IMAGE_RE = re.compile(
    r"^(?P<repo>[^@]+?)(?::(?P<tag>[\w][\w.-]{0,127}))?(?:@(?P<digest>sha256:[0-9a-f]{64}))?$"
)


def _pod_templates(docs: tuple[dict[str, Any], ...]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    return [(d, d["spec"]["template"]) for d in of_kind(docs, "Deployment")]


def _settings(target: str) -> dict[str, str]:
    """The DELIVERY_ETA_* ConfigMap a target renders (one per target)."""
    (cm,) = of_kind(render(target), "ConfigMap")
    return dict(cm["data"])


@pytest.mark.parametrize("target", TARGETS)
def test_images_are_pinned(target: str) -> None:
    for dep, tpl in _pod_templates(render(target)):
        for c in tpl["spec"]["containers"] + tpl["spec"].get("initContainers", []):
            m = IMAGE_RE.match(c["image"])
            assert m, f"{name(dep)}: unparseable image {c['image']!r}"
            assert m["tag"] or m["digest"], f"{name(dep)}: untagged image {c['image']!r}"
            assert m["tag"] != "latest", f"{name(dep)}: image {c['image']!r} uses :latest"


@pytest.mark.parametrize("target", OVERLAYS)
def test_overlays_use_a_registry_image(target: str) -> None:
    # The base keeps the local `make image` name; a cluster pulls from a registry.
    for dep, tpl in _pod_templates(render(target)):
        for c in tpl["spec"]["containers"]:
            assert "/" in c["image"].split(":")[0], (
                f"{name(dep)}: {c['image']} is not a registry path"
            )


@pytest.mark.parametrize("target", TARGETS)
def test_containers_have_probes_and_resources(target: str) -> None:
    for dep, tpl in _pod_templates(render(target)):
        for c in tpl["spec"]["containers"]:
            where = f"{name(dep)} container {c['name']}"
            assert c["livenessProbe"]["httpGet"]["path"] == "/livez", where
            assert c["readinessProbe"]["httpGet"]["path"] == "/readyz", where
            startup = c["startupProbe"]
            budget = startup["periodSeconds"] * startup["failureThreshold"]
            # Model load takes seconds; allow a slow node 30 s+, but not forever.
            assert 30 <= budget <= 300, f"{where}: startup budget {budget}s"
            for kind in ("requests", "limits"):
                for res in ("cpu", "memory"):
                    assert res in c["resources"].get(kind, {}), f"{where}: no {kind}.{res}"
            assert c["ports"][0]["containerPort"] == 3000


def _cpu(q: str) -> float:
    return float(q[:-1]) / 1000 if str(q).endswith("m") else float(q)


def _mem(q: str) -> int:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "K": 10**3, "M": 10**6, "G": 10**9}
    for u, f in units.items():
        if str(q).endswith(u):
            return int(float(q[: -len(u)]) * f)
    return int(q)


@pytest.mark.parametrize("target", TARGETS)
def test_requests_do_not_exceed_limits(target: str) -> None:
    for dep, tpl in _pod_templates(render(target)):
        for c in tpl["spec"]["containers"]:
            r, lim = c["resources"]["requests"], c["resources"]["limits"]
            assert _cpu(r["cpu"]) <= _cpu(lim["cpu"]), name(dep)
            assert _mem(r["memory"]) <= _mem(lim["memory"]), name(dep)


@pytest.mark.parametrize("target", TARGETS)
def test_pods_run_as_non_root_with_read_only_root(target: str) -> None:
    for dep, tpl in _pod_templates(render(target)):
        pod_sc = tpl["spec"].get("securityContext", {})
        assert tpl["spec"].get("automountServiceAccountToken") is False, name(dep)
        for c in tpl["spec"]["containers"]:
            sc = {**pod_sc, **c.get("securityContext", {})}
            where = f"{name(dep)} container {c['name']}"
            assert sc.get("runAsNonRoot") is True, where
            # A numeric non-zero uid: the kubelet can't check runAsNonRoot against
            # the image's *named* user (`bentoml`).
            assert isinstance(sc.get("runAsUser"), int) and sc["runAsUser"] > 0, where
            assert c["securityContext"].get("readOnlyRootFilesystem") is True, where
            assert c["securityContext"].get("allowPrivilegeEscalation") is False, where
            assert c["securityContext"]["capabilities"]["drop"] == ["ALL"], where
            assert pod_sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", where


@pytest.mark.parametrize("target", TARGETS)
def test_writable_dirs_are_volumes(target: str) -> None:
    """Read-only root: /tmp, BENTOML_HOME (BentoML's tmp + Prometheus multiprocess dir)
    and the service's state dir (prediction log) must be emptyDirs, and every mount
    must name a declared volume."""
    for dep, tpl in _pod_templates(render(target)):
        volumes = {v["name"]: v for v in tpl["spec"].get("volumes", [])}
        for c in tpl["spec"]["containers"]:
            mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
            env = {e["name"]: e for e in c.get("env", [])}
            bentoml_home = env["BENTOML_HOME"]["value"]
            for path in ("/tmp", bentoml_home, "/var/lib/delivery-eta"):
                assert path in mounts, f"{name(dep)}: {path} is not a volume"
                assert "emptyDir" in volumes[mounts[path]], (
                    f"{name(dep)}: {path} is not an emptyDir"
                )
            for vol in mounts.values():
                assert vol in volumes, f"{name(dep)}: mount of undeclared volume {vol}"


@pytest.mark.parametrize("target", TARGETS)
def test_rollout_and_shutdown(target: str) -> None:
    for dep, tpl in _pod_templates(render(target)):
        ru = dep["spec"]["strategy"]["rollingUpdate"]
        assert dep["spec"]["strategy"]["type"] == "RollingUpdate"
        assert (ru["maxSurge"], ru["maxUnavailable"]) == (1, 0), name(dep)
        grace = tpl["spec"]["terminationGracePeriodSeconds"]
        drain_s = float(_settings(target)["DELIVERY_ETA_SHUTDOWN_DRAIN_S"])
        assert drain_s >= 3, f"{name(dep)}: endpoints need a few seconds to drop the pod"
        for c in tpl["spec"]["containers"]:
            pre = c.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
            pre_s = int(pre[1]) if pre[:1] == ["sleep"] else 0
            # Time left to finish in-flight requests after any preStop sleep and the drain.
            assert grace - pre_s - drain_s >= 15, (
                f"{name(dep)}: grace {grace}s, preStop {pre_s}s, drain {drain_s}s"
            )


@pytest.mark.parametrize("target", TARGETS)
def test_worker_count_follows_cpu_limit(target: str) -> None:
    for dep, tpl in _pod_templates(render(target)):
        for c in tpl["spec"]["containers"]:
            env = {e["name"]: e for e in c["env"]}
            ref = env["DELIVERY_ETA_WORKERS"]["valueFrom"]["resourceFieldRef"]
            assert ref["resource"] == "limits.cpu" and ref["containerName"] == c["name"], name(dep)
            assert str(ref.get("divisor", "1")) == "1", name(dep)


# Created out of band in a real cluster (docs/deploy.md), never rendered there.
EXTERNAL_SECRETS = {"delivery-eta-redis", "delivery-eta-auth"}


@pytest.mark.parametrize("target", TARGETS)
def test_references_resolve(target: str) -> None:
    docs = render(target)
    names = {(d["kind"], d["metadata"]["name"]) for d in docs}
    for dep, tpl in _pod_templates(docs):
        for c in tpl["spec"]["containers"]:
            for src in c.get("envFrom", []):
                if "configMapRef" in src:
                    assert ("ConfigMap", src["configMapRef"]["name"]) in names, name(dep)
            for e in c.get("env", []):
                ref = e.get("valueFrom", {}).get("secretKeyRef")
                if ref and ("Secret", ref["name"]) not in names:
                    assert ref["name"] in EXTERNAL_SECRETS, f"{name(dep)}: secret {ref['name']}"
                ref = e.get("valueFrom", {}).get("configMapKeyRef")
                if ref:
                    assert ("ConfigMap", ref["name"]) in names, name(dep)
    for hpa in of_kind(docs, "HorizontalPodAutoscaler") + of_kind(docs, "ScaledObject"):
        ref = hpa["spec"]["scaleTargetRef"]
        assert (ref["kind"], ref["name"]) in names, f"{name(hpa)} targets missing {ref}"


@pytest.mark.parametrize("target", OVERLAYS)
def test_production_redis_secret_is_external_and_required(target: str) -> None:
    """Applying an overlay must never overwrite the real Redis URL with the base's
    placeholder, and a missing Secret must stop the pod, not start it half-configured."""
    docs = render(target)
    assert not [d for d in of_kind(docs, "Secret") if d["metadata"]["name"] in EXTERNAL_SECRETS]
    for dep, tpl in _pod_templates(docs):
        (c,) = tpl["spec"]["containers"]
        env = {e["name"]: e for e in c["env"]}
        ref = env["DELIVERY_ETA_REDIS_URL"]["valueFrom"]["secretKeyRef"]
        assert ref["name"] in EXTERNAL_SECRETS and ref.get("optional") is False, name(dep)


@pytest.mark.parametrize("target", OVERLAYS)
def test_production_auth_tokens_are_required_and_scraped_with(target: str) -> None:
    """/v1/feedback and /metrics are never open in production: a missing token Secret stops
    the pod, and Prometheus scrapes with the same Secret's metrics token."""
    docs = render(target)
    for dep, tpl in _pod_templates(docs):
        (c,) = tpl["spec"]["containers"]
        env = {e["name"]: e for e in c["env"]}
        for variable, key in [
            ("DELIVERY_ETA_FEEDBACK_TOKEN", "feedback-token"),
            ("DELIVERY_ETA_METRICS_TOKEN", "metrics-token"),
        ]:
            ref = env[variable]["valueFrom"]["secretKeyRef"]
            assert (ref["name"], ref["key"], ref.get("optional")) == (
                "delivery-eta-auth",
                key,
                False,
            ), name(dep)
    (sm,) = of_kind(docs, "ServiceMonitor")
    for endpoint in sm["spec"]["endpoints"]:
        assert endpoint["authorization"]["credentials"] == {
            "name": "delivery-eta-auth",
            "key": "metrics-token",
        }


@pytest.mark.parametrize("target", TARGETS)
def test_selectors_are_consistent(target: str) -> None:
    docs = render(target)
    deployments = of_kind(docs, "Deployment")
    for dep in deployments:
        sel = dep["spec"]["selector"]["matchLabels"]
        assert selects(sel, dep["spec"]["template"]["metadata"]["labels"]), name(dep)
        # No Deployment may claim another Deployment's pods.
        for other in deployments:
            if other is not dep:
                assert not selects(sel, other["spec"]["template"]["metadata"]["labels"]), (
                    f"{name(dep)} selects pods of {name(other)}"
                )
    pod_labels = [d["spec"]["template"]["metadata"]["labels"] for d in deployments]
    for obj in of_kind(docs, "Service"):
        assert any(selects(obj["spec"]["selector"], lab) for lab in pod_labels), (
            f"{name(obj)} selects no pods"
        )
    for pdb in of_kind(docs, "PodDisruptionBudget"):
        assert any(selects(pdb["spec"]["selector"]["matchLabels"], lab) for lab in pod_labels), (
            name(pdb)
        )
    (sm,) = of_kind(docs, "ServiceMonitor")
    scraped = [
        s
        for s in of_kind(docs, "Service")
        if selects(sm["spec"]["selector"]["matchLabels"], s["metadata"]["labels"])
    ]
    # Exactly one Service scraped, or every pod would be scraped (and alerted on) twice.
    assert [s["metadata"]["name"] for s in scraped] == ["delivery-eta"]
    port_names = {p["name"] for p in scraped[0]["spec"]["ports"]}
    assert {e["port"] for e in sm["spec"]["endpoints"]} <= port_names


@pytest.mark.parametrize("target", TARGETS)
def test_autoscaling_and_disruption_budget(target: str) -> None:
    docs = render(target)
    hpas = of_kind(docs, "HorizontalPodAutoscaler")
    # KEDA's ScaledObject (components/keda-autoscaling) makes the HPA in the cluster; its
    # triggers are checked in test_autoscaling_manifests.py.
    scaled_objects = of_kind(docs, "ScaledObject")
    assert hpas or scaled_objects
    for hpa in hpas:
        spec = hpa["spec"]
        if target != "overlays/canary":  # the canary raises the stable floor, see below
            assert (spec["minReplicas"], spec["maxReplicas"]) == (3, 20), name(hpa)
        targets = {
            m["resource"]["name"]: m["resource"]["target"]["averageUtilization"]
            for m in spec["metrics"]
        }
        assert targets == {"cpu": 70, "memory": 80}, name(hpa)
    targeted = Counter(h["spec"]["scaleTargetRef"]["name"] for h in hpas + scaled_objects)
    # Two autoscalers on one Deployment (the base HPA left next to KEDA's) fight over replicas.
    assert all(n == 1 for n in targeted.values()), f"{target}: {targeted}"
    scaled = set(targeted)
    for dep in of_kind(docs, "Deployment"):
        # HPA-owned Deployments must not pin replicas (apply would fight the HPA).
        if dep["metadata"]["name"] in scaled:
            assert "replicas" not in dep["spec"], name(dep)
    for pdb in of_kind(docs, "PodDisruptionBudget"):
        assert pdb["spec"].get("maxUnavailable") == 1 or pdb["spec"].get("minAvailable"), name(pdb)


def test_canary_shape() -> None:
    docs = render("overlays/canary")
    deps = {d["metadata"]["name"]: d for d in of_kind(docs, "Deployment")}
    assert set(deps) == {"delivery-eta", "delivery-eta-canary"}
    stable, canary = deps["delivery-eta"], deps["delivery-eta-canary"]
    assert stable["spec"]["template"]["metadata"]["labels"]["track"] == "stable"
    assert canary["spec"]["template"]["metadata"]["labels"]["track"] == "canary"
    (svc,) = [s for s in of_kind(docs, "Service") if s["metadata"]["name"] == "delivery-eta"]
    for d in (stable, canary):
        assert selects(svc["spec"]["selector"], d["spec"]["template"]["metadata"]["labels"])
    # Traffic share = pod share; at the stable HPA floor it must stay ~5 %.
    (hpa,) = of_kind(docs, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "delivery-eta"
    share = canary["spec"]["replicas"] / (canary["spec"]["replicas"] + hpa["spec"]["minReplicas"])
    assert share <= 0.05 + 1e-9, f"canary share {share:.1%}"
    img = lambda d: d["spec"]["template"]["spec"]["containers"][0]["image"]  # noqa: E731
    assert img(stable) != img(canary), "a canary of the same image tests nothing"


def test_blue_green_shape() -> None:
    docs = render("overlays/blue-green")
    deps = {d["metadata"]["name"]: d for d in of_kind(docs, "Deployment")}
    assert set(deps) == {"delivery-eta-blue", "delivery-eta-green"}
    svcs = {s["metadata"]["name"]: s for s in of_kind(docs, "Service")}
    live = svcs["delivery-eta"]["spec"]["selector"]
    colours = {d["spec"]["template"]["metadata"]["labels"]["colour"]: d for d in deps.values()}
    selected = [
        c for c, d in colours.items() if selects(live, d["spec"]["template"]["metadata"]["labels"])
    ]
    assert len(selected) == 1, f"live Service must select exactly one colour, selects {selected}"
    for colour, dep in colours.items():
        preview = svcs[f"delivery-eta-preview-{colour}"]["spec"]["selector"]
        assert selects(preview, dep["spec"]["template"]["metadata"]["labels"])
        assert not selects(
            preview,
            colours[{"blue": "green", "green": "blue"}[colour]]["spec"]["template"]["metadata"][
                "labels"
            ],
        )
    hpa_targets = {
        h["spec"]["scaleTargetRef"]["name"] for h in of_kind(docs, "HorizontalPodAutoscaler")
    }
    assert hpa_targets == set(deps)


def test_production_uses_redis_feature_store() -> None:
    docs = render("overlays/production")
    (cm,) = of_kind(docs, "ConfigMap")
    assert cm["data"]["DELIVERY_ETA_FEATURE_STORE_BACKEND"] == "redis"
    assert "DELIVERY_ETA_REDIS_URL" not in cm["data"], "the Redis URL belongs in the Secret"
    (ns,) = of_kind(docs, "Namespace")
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert all(
        d["metadata"].get("namespace") == ns["metadata"]["name"]
        for d in docs
        if d["kind"] != "Namespace"
    )


@pytest.mark.parametrize("target", TARGETS)
def test_the_sqlite_prediction_log_is_on_the_state_volume(target: str) -> None:
    """The default prediction log is under BENTOML_HOME, a small emptyDir for BentoML's own
    files: the pods name theirs on the state volume sized for it (test_writable_dirs_are_volumes
    checks that it is one)."""
    path = _settings(target).get("DELIVERY_ETA_PREDICTION_LOG_PATH", "")
    assert path.startswith("/var/lib/delivery-eta/"), f"{target}: prediction log at {path!r}"
