"""The house's layering, read from the code's own imports (``ast``, every import statement,
including those inside functions): a new import that runs the wrong way fails here, naming it.

Layers, lowest first: ``framework_internals`` (the one door to BentoML's private APIs) ->
``models`` (the pure core) -> ``prediction_log`` (the log's storage) -> ``serving`` (the HTTP
transport) and ``operations`` (offline commands) -> the entry points (service.py, train.py,
loadtest/, deploy/, examples/). Inside a package, two sibling rooms never import each other
both ways. And no product source file is over 450 lines.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = {"framework_internals": 0, "models": 1, "prediction_log": 2, "serving": 3, "operations": 3}
PACKAGES = ("framework_internals", "models", "prediction_log", "serving", "operations")
MAX_LINES = 450


def _sources(*tops: str) -> list[Path]:
    files: list[Path] = []
    for top in tops:
        path = ROOT / top
        if path.is_dir():
            files += sorted(path.rglob("*.py"))
        elif path.with_suffix(".py").is_file():
            files.append(path.with_suffix(".py"))
    return [f for f in files if ".venv" not in f.parts]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Absolute names of this project's modules that ``path`` imports (relative ones resolved)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = _module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package[: len(package) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names.add(base)
            # ``from serving import pipeline`` imports the subpackage: count it as such.
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return {n for n in names if n.split(".")[0] in PACKAGES}


def _existing(name: str, known: set[str]) -> str | None:
    """The longest prefix of ``name`` that is a module of this project."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in known:
            return candidate
    return None


def _graph() -> dict[str, set[str]]:
    files = _sources(*PACKAGES)
    known = {_module_name(f) for f in files}
    graph: dict[str, set[str]] = {}
    for f in files:
        targets = {_existing(n, known) for n in _imports(f)}
        graph[_module_name(f)] = {t for t in targets if t and t != _module_name(f)}
    return graph


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    """Imports from a lower layer up into a higher one, or across serving <-> operations."""
    found = []
    for source, targets in sorted(graph.items()):
        top = source.split(".")[0]
        for target in sorted(targets):
            other = target.split(".")[0]
            if other == top:
                continue
            if LAYERS[other] >= LAYERS[top]:
                found.append(f"{source} imports {target}: {top} may not import {other}")
    return found


def two_way_siblings(graph: dict[str, set[str]]) -> list[str]:
    """Pairs of sibling rooms (modules or subpackages of one package) importing each other."""
    edges: dict[str, set[str]] = defaultdict(set)
    for source, targets in graph.items():
        src = source.split(".")
        for target in targets:
            dst = target.split(".")
            common = 0
            while common < min(len(src), len(dst)) - 1 and src[common] == dst[common]:
                common += 1
            if common == 0 or src[:common] != dst[:common] or len(src) == common:
                continue
            parent = ".".join(src[:common])
            a, b = src[common], dst[common] if len(dst) > common else None
            if b is None or a == b:
                continue
            edges[f"{parent}.{a}"].add(f"{parent}.{b}")
    return sorted(
        f"{a} <-> {b}: each imports the other"
        for a, targets in edges.items()
        for b in targets
        if a < b and a in edges.get(b, set())
    )


def test_the_graph_is_read() -> None:
    graph = _graph()
    # The rule only means something if the scan sees the real imports.
    assert "models.contract" in graph and "serving.pipeline.prediction_pipeline" in graph
    assert any(t.startswith("models.") for t in graph["serving.pipeline.prediction_pipeline"])


def test_no_import_runs_up_a_layer() -> None:
    assert layer_violations(_graph()) == []


def test_no_two_sibling_rooms_import_each_other() -> None:
    assert two_way_siblings(_graph()) == []


def test_the_rules_catch_a_violation() -> None:
    # The checks above can fail: the same functions flag a hand-made wrong graph.
    wrong = {
        "models.promotion.gate": {"serving.settings"},
        "serving.pipeline.batching": {"serving.telemetry.metrics"},
        "serving.telemetry.metrics": {"serving.pipeline.batching"},
    }
    assert layer_violations(wrong) == [
        "models.promotion.gate imports serving.settings: models may not import serving"
    ]
    assert two_way_siblings(wrong) == [
        "serving.pipeline <-> serving.telemetry: each imports the other"
    ]


@pytest.mark.parametrize(
    "path",
    [
        p.relative_to(ROOT).as_posix()
        for p in _sources(*PACKAGES, "service", "train", "loadtest", "deploy", "examples")
    ],
)
def test_no_source_file_is_over_450_lines(path: str) -> None:
    lines = len((ROOT / path).read_text().splitlines())
    assert lines <= MAX_LINES, f"{path} has {lines} lines: split it by concern"
