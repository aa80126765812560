"""The in-process stage timing of a v2 binary call runs the worker's real pipeline on the
session's model and reports every stage, the whole route and its parts."""

from __future__ import annotations

import asyncio
from pathlib import Path

from loadtest.v2_stages import measure, table
from models.store.artifact import load_artifact


def test_every_stage_and_the_route_are_timed(registered, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    stages = asyncio.run(
        measure(load_artifact(registered.tag), rows=300, repeats=2, workdir=tmp_path, callers=2)
    )
    names = [name for name, _ in stages]
    assert names[0] == "decode + validation" and "model (one call)" in names
    assert [n for n in names if n.startswith("route")] == [
        "route body -> body: wall",
        "route: the model's call (its thread)",
        "route: event-loop thread CPU (all but model, log write)",
        "route: of which the model call's observers",
        "route: prediction log write (wall, its thread)",
        "route: prediction log write (its thread's CPU, mean)",
        "route, 2 callers at once: event-loop thread CPU per call (mean)",
    ]
    assert all(seconds > 0 for _, seconds in stages), stages
    timings = dict(stages)
    # The route holds the model's call and the event loop's share of it.
    assert timings["route body -> body: wall"] >= timings["route: the model's call (its thread)"]
    loop = timings["route: event-loop thread CPU (all but model, log write)"]
    assert timings["route: of which the model call's observers"] < loop
    rendered = table(stages, 300).splitlines()
    assert rendered[0] == "| stage | ms / call | µs / row |" and len(rendered) == len(stages) + 2
