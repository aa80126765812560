"""What ``service.py`` hands BentoML as configuration: tracing is skipped for every request unless
``DELIVERY_ETA_TRACING`` asks for it (BentoML records a span per request even at sample rate 0)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness.local_server import ROOT
from tests.harness.model_copies import copy_model

# Applies the service's config the way `bentoml serve` does, then asks the tracing middleware's
# exclude list about a prediction URL.
PROBE = """
import service
from bentoml._internal.configuration.containers import BentoMLContainer
service.DeliveryETA.inject_config()
print(BentoMLContainer.tracing_excluded_urls.get().url_disabled("http://127.0.0.1:3000/v1/predict"))
"""


def _import_service(registered, tmp_path: Path, probe: str, **settings: str) -> str:  # type: ignore[no-untyped-def]
    """The last line ``probe`` prints after importing ``service`` in a fresh interpreter, with
    the session's model store seen from a private home and ``settings`` as DELIVERY_ETA_*."""
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "models").symlink_to(Path(registered.path).parents[1])
    env = {k: v for k, v in os.environ.items() if not k.startswith("DELIVERY_ETA_")}
    env |= {
        "BENTOML_HOME": str(tmp_path / "home"),
        "DELIVERY_ETA_MODEL_TAG": registered.tag,
        "DELIVERY_ETA_PREDICTION_LOG_PATH": str(tmp_path / "predictions.sqlite3"),
        **{f"DELIVERY_ETA_{name.upper()}": value for name, value in settings.items()},
    }
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize(("tracing", "skipped"), [(None, "True"), ("true", "False")])
def test_tracing_middleware_skips_requests_unless_tracing_is_on(
    registered,  # type: ignore[no-untyped-def]
    tmp_path: Path,
    tracing: str | None,
    skipped: str,
) -> None:
    settings = {} if tracing is None else {"tracing": tracing}
    assert _import_service(registered, tmp_path, PROBE, **settings) == skipped


def test_a_configured_challenger_is_packed_into_the_bento_beside_the_served_model(
    registered,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    challenger, _ = copy_model(registered, tmp_path, "packed")
    probe = "import service; print(sorted(str(m.tag) for m in service.DeliveryETA.models))"
    declared = _import_service(registered, tmp_path, probe, shadow_model_tag=challenger)
    assert declared == repr(sorted([registered.tag, challenger]))
