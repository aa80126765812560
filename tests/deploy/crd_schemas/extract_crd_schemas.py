"""Rebuild the CRD schema fixtures of tests/deploy/test_oip_manifests.py from the CRDs.

    python tests/deploy/crd_schemas/extract_crd_schemas.py KSERVE_CRD SELDON_MODEL_CRD SELDON_SERVER_CRD
    python tests/deploy/crd_schemas/extract_crd_schemas.py --keda KEDA_SCALEDOBJECT_CRD

takes the three CRD YAML files, or KEDA's ScaledObject CRD (for
tests/deploy/test_autoscaling_manifests.py; paths and commits in README.md here), and writes one JSON file
per kind: the served version's openAPIV3Schema, unchanged except that every `description` is
dropped (they are 2/3 of the bytes) and the subtrees these manifests never use are cut
(listed in TRIMMED; each is replaced by an object that accepts anything, marked `x-trimmed`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent

# Paths (property names from the root) cut from each schema: other predictor kinds and
# components and `status`, none of which the manifests set.
TRIMMED: dict[str, list[tuple[str, ...]]] = {
    "InferenceService": [
        ("status",),
        ("spec", "transformer"),
        ("spec", "explainer"),
        ("spec", "canary"),
        *(
            ("spec", "predictor", kind)
            for kind in (
                "huggingface",
                "lightgbm",
                "model",
                "onnx",
                "paddle",
                "pmml",
                "pytorch",
                "sklearn",
                "tensorflow",
                "triton",
                "xgboost",
                "workerSpec",
            )
        ),
    ],
    "Model": [("status",)],
    "Server": [("status",)],
    "ScaledObject": [("status",)],
}


def _without_descriptions(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _without_descriptions(v) for k, v in node.items() if k != "description"}
    if isinstance(node, list):
        return [_without_descriptions(v) for v in node]
    return node


def extract(crd_path: Path, kind: str) -> dict[str, Any]:
    """The served version's openAPIV3Schema of `kind` in the CRD file, trimmed as above."""
    crd = yaml.safe_load(crd_path.read_text())
    assert crd["spec"]["names"]["kind"] == kind, crd_path
    (version,) = [v for v in crd["spec"]["versions"] if v.get("storage")]
    schema: dict[str, Any] = _without_descriptions(version["schema"]["openAPIV3Schema"])
    for path in TRIMMED[kind]:
        parent = schema
        for key in path[:-1]:
            parent = parent["properties"][key]
        parent["properties"][path[-1]] = {
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": True,
            "x-trimmed": True,
        }
    return {
        "group": crd["spec"]["group"],
        "version": version["name"],
        "kind": kind,
        "openAPIV3Schema": schema,
    }


def main(kserve: str, seldon_model: str, seldon_server: str) -> None:
    """Write InferenceService.json, Model.json and Server.json next to this file."""
    for path, kind in [
        (kserve, "InferenceService"),
        (seldon_model, "Model"),
        (seldon_server, "Server"),
    ]:
        out = HERE / f"{kind}.json"
        out.write_text(
            json.dumps(extract(Path(path), kind), sort_keys=True, separators=(",", ":")) + "\n"
        )
        print(out, out.stat().st_size)


def write(path: str, kind: str) -> None:
    """Write KIND.json next to this file from the CRD file at `path`."""
    out = HERE / f"{kind}.json"
    out.write_text(
        json.dumps(extract(Path(path), kind), sort_keys=True, separators=(",", ":")) + "\n"
    )
    print(out, out.stat().st_size)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--keda"]:
        write(sys.argv[2], "ScaledObject")
    else:
        main(*sys.argv[1:4])
