"""The in-process one-row comparison runs /v1's and v2's body -> body on the worker's real
pipeline and the session's model, and reports each stage for both."""

from __future__ import annotations

import asyncio
from pathlib import Path

from loadtest.one_row_stages import measure, table
from models.store.artifact import load_artifact


def test_each_stage_is_timed_for_both_apis(registered, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    stages = asyncio.run(measure(load_artifact(registered.tag), repeats=3, workdir=tmp_path))
    assert [name for name, _, _ in stages] == [
        "decode + validation",
        "feature assembly",
        "answer encoding",
        "body -> body (event-loop thread)",
    ]
    assert all(v1 > 0 and v2 > 0 for _, v1, v2 in stages), stages
    rendered = table(stages).splitlines()
    assert rendered[0].startswith("| stage | /v1/predict µs") and len(rendered) == len(stages) + 2
