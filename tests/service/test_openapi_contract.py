"""Contract: the /v1 OpenAPI schemas match the checked-in snapshot.

A change here is a change for every client. If it is intended, refresh the snapshot with
``UPDATE_OPENAPI_SNAPSHOT=1 make test`` and commit it with the change.
"""

import json
import os
import re
from pathlib import Path

import httpx

REF = r"#/components/schemas/([A-Za-z0-9_]+)"
SNAPSHOT = Path(__file__).parent / "snapshots" / "openapi_v1.json"


def _v1_contract(spec: dict) -> dict:  # type: ignore[type-arg]
    """The /v1 paths plus every component schema they reference, directly or transitively."""
    paths = {path: ops for path, ops in spec["paths"].items() if path.startswith("/v1/")}
    schemas = spec["components"]["schemas"]
    kept: dict = {}  # type: ignore[type-arg]
    pending = set(re.findall(REF, json.dumps(paths)))
    while pending:
        name = pending.pop()
        kept[name] = schemas[name]
        pending |= set(re.findall(REF, json.dumps(schemas[name]))) - kept.keys()
    return {"paths": paths, "schemas": dict(sorted(kept.items()))}


def test_v1_openapi_matches_snapshot(client: httpx.Client) -> None:
    contract = _v1_contract(client.get("/docs.json").json())
    rendered = json.dumps(contract, indent=2, sort_keys=True) + "\n"
    if os.environ.get("UPDATE_OPENAPI_SNAPSHOT") == "1":
        SNAPSHOT.write_text(rendered)
    assert SNAPSHOT.exists(), "no snapshot yet: run UPDATE_OPENAPI_SNAPSHOT=1 make test"
    assert json.loads(SNAPSHOT.read_text()) == contract, (
        "the /v1 API contract changed; if intended: UPDATE_OPENAPI_SNAPSHOT=1 make test"
    )
