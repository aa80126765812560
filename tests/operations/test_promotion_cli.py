"""``python -m operations.promotion``: the lifecycle's command line refuses impossible options in
one line (exit 2) before it touches the model store or the log. The gate's decisions through the
same command line are tested with the gate (tests/models/promotion/), where the store is."""

from __future__ import annotations

import subprocess
import sys

import pytest

from operations.promotion import main as promotion_cli
from tests.harness.local_server import ROOT


def test_options_that_cannot_go_together_are_refused_in_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert promotion_cli(["promote", "--shadow-hours", "2"]) == 2
    said = capsys.readouterr()
    assert said.out == "" and said.err.strip().splitlines() == [
        "delivery-eta lifecycle: --shadow-hours needs --min-shadow-rows"
    ]
    assert promotion_cli(["promote", "--min-shadow-rows", "0"]) == 2
    assert (
        capsys.readouterr().err == "delivery-eta lifecycle: --min-shadow-rows must be at least 1\n"
    )


def test_the_module_runs_as_the_makefile_calls_it() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "operations.promotion", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: python -m operations.promotion")
    for command in ("promote", "rollback", "status"):
        assert command in result.stdout
