"""Worker counts per server, and the targets they make: one per (server, worker count).

``--workers`` (``BENCH_WORKERS``) is a spec of space-separated groups: a bare list of counts
applies to every server, ``SERVER=LIST`` to that server only::

    2                       every server with 2 workers
    1,2,3                   every server at 1, 2 and 3 workers (each one's best count)
    2 tutorial=1,2,3        2 workers, but the tutorial app at 1, 2 and 3
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from loadtest.bench.common import ALIASES, SERVERS

DEFAULT_KEY = "*"


@dataclass(frozen=True)
class TargetSpec:
    """One server at one worker count, before it is started."""

    name: str
    server: str
    workers: int


def _counts(text: str) -> list[int]:
    counts = [int(x) for x in text.split(",") if x.strip()]
    if not counts or any(n < 1 for n in counts):
        raise ValueError(f"worker counts must be integers >= 1, got {text!r}")
    return sorted(set(counts))


def parse_workers(spec: str) -> dict[str, list[int]]:
    """``{"*": counts for every server, server: its own counts, ...}`` from a workers spec."""
    parsed: dict[str, list[int]] = {}
    for group in spec.replace(";", " ").split():
        server, sep, counts = group.rpartition("=")
        if sep:
            server = ALIASES.get(server, server)
            if server not in SERVERS:
                raise ValueError(f"unknown server {server!r} in workers spec {spec!r}")
        parsed[server if sep else DEFAULT_KEY] = _counts(counts)
    parsed.setdefault(DEFAULT_KEY, [2])
    return parsed


def target_specs(servers: Sequence[str], workers: Mapping[str, Sequence[int]]) -> list[TargetSpec]:
    """One target per (server, worker count), servers in the given order, counts ascending.

    A server measured at a single count keeps its plain name; at several counts each target is
    ``<server>@w<count>``."""
    specs: list[TargetSpec] = []
    for server in servers:
        counts = workers.get(server, workers[DEFAULT_KEY])
        for count in counts:
            name = server if len(counts) == 1 else f"{server}@w{count}"
            specs.append(TargetSpec(name, server, count))
    return specs


def describe_workers(specs: Sequence[TargetSpec]) -> str:
    """``service 2, tutorial 1/2/3, ...`` for the report's header."""
    per_server: dict[str, list[int]] = {}
    for spec in specs:
        per_server.setdefault(spec.server, []).append(spec.workers)
    return ", ".join(f"{s} {'/'.join(map(str, c))}" for s, c in per_server.items())
