"""The contract is the one place that names a feature (issue 23): no other module may.

Every name the default contract declares -- its request fields and their entity aggregates --
is searched for as a whole word in the tracked code outside the contract's own package. A module
that needs a feature name must take it from a ``FeatureContract``.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from models.contract import default_contract

ROOT = Path(__file__).resolve().parents[3]
CODE_SUFFIXES = {".py", ".lua", ".sh", ".mk", ".tmpl"}
EXEMPT = {
    # The contract itself: the default contract and the code that reads it.
    "models/contract/": "the contract's own package",
    # Data worlds, not code paths: each generates the columns of a training file.
    "models/training/synthetic_orders.py": "the built-in synthetic history of the default contract",
    "examples/": "stand-in warehouse exports a user would bring",
    # The plain FastAPI app a user would write by hand from the tutorial: the benchmark's
    # reference, deliberately not built from the contract.
    "loadtest/tutorial_app.py": "the hand-written reference app of the benchmark",
    "tests/": "tests state the default contract's behaviour in its own names",
}


def _tracked_code() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return [
        path
        for path in listed
        if Path(path).suffix in CODE_SUFFIXES or path == "Makefile"
        if not any(path.startswith(prefix) for prefix in EXEMPT)
    ]


def test_the_default_contract_declares_the_searched_names() -> None:
    contract = default_contract()
    names = {*contract.fields, *contract.entity_features}
    assert {"distance_km", "restaurant_avg_delivery_time"} <= names


def test_no_module_outside_the_contract_names_a_feature() -> None:
    contract = default_contract()
    names = sorted({*contract.fields, *contract.entity_features})
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, names)) + r")\b")
    offenders = []
    for path in _tracked_code():
        file = ROOT / path
        if not file.is_file():
            continue
        for number, line in enumerate(file.read_text(errors="replace").splitlines(), start=1):
            match = pattern.search(line)
            if match:
                offenders.append(f"{path}:{number}: {match.group(0)}: {line.strip()[:100]}")
    assert not offenders, "feature names outside the contract:\n" + "\n".join(offenders)
