"""The protocol's routes as templates: the label of a v2 request in metrics and logs (a
client chooses the model segment of a path, so the raw path is never a label)."""

from __future__ import annotations

LIVE = "/v2/health/live"
READY = "/v2/health/ready"
SERVER = "/v2"
MODEL = "/v2/models/{model_name}"
MODEL_VERSION = "/v2/models/{model_name}/versions/{model_version}"
MODELS_PREFIX = "/v2/models/"
ROUTE_TEMPLATES = frozenset(
    {
        LIVE,
        READY,
        SERVER,
        *(
            f"{model}{suffix}"
            for model in (MODEL, MODEL_VERSION)
            for suffix in ("", "/ready", "/infer")
        ),
    }
)
"""Every v2 route's label."""
PROBE_TEMPLATES = frozenset({LIVE, READY, f"{MODEL}/ready", f"{MODEL_VERSION}/ready"})
"""Health probes: logged at DEBUG like ``/readyz``."""
