"""The servers a shadow-cost run compares (shadow off, on, on at nice 0) and the kinds of run
each round makes (wrk single rows and batches, lone sequential requests)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from loadtest.bench.measure import BATCH_SCRIPT, SINGLE_SCRIPT

BATCH_ROWS = 1000


@dataclass(frozen=True)
class Job:
    """One kind of run: wrk with a Lua script, or (``script`` None) lone sequential requests."""

    path: str
    script: Path | None
    rows: int | None
    """Orders per body (a batch), or None for single orders (``WrkBodies.script_args``)."""
    connections: int
    rows_per_request: int

    @property
    def label(self) -> str:
        return f"@{self.connections}" if self.script else f"x{LONE_REQUESTS} one at a time"


JOBS = {
    "single": Job("/v1/predict", SINGLE_SCRIPT, None, 64, 1),
    "batch": Job("/v1/predict/batch", BATCH_SCRIPT, BATCH_ROWS, 8, BATCH_ROWS),
    # one client, one request at a time: the latency a lone caller sees, no queueing in it
    "lone": Job("/v1/predict", None, None, 1, 1),
}
LONE_REQUESTS = 300

OFF = "off"
CONFIG_NAMES = ("off", "on", "on-nice0")


def config_env(name: str, challenger: str, fraction: float) -> dict[str, str]:
    """The shadow settings of configuration ``name`` (``off``: none)."""
    if name == OFF:
        return {}
    env = {
        "DELIVERY_ETA_SHADOW_MODEL_TAG": challenger,
        "DELIVERY_ETA_SHADOW_FRACTION": repr(fraction),
    }
    if name == "on-nice0":
        env["DELIVERY_ETA_SHADOW_NICE"] = "0"
    elif name != "on":
        raise ValueError(f"unknown configuration {name!r} (known: {', '.join(CONFIG_NAMES)})")
    return env


def parse_configs(text: str) -> list[str]:
    """``off,on[,on-nice0]``: ``off`` first (the ratios' denominator), no repeats."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in CONFIG_NAMES]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown configuration(s) {unknown}; choose from {', '.join(CONFIG_NAMES)}"
        )
    if len(set(names)) != len(names) or OFF not in names or len(names) < 2:
        raise argparse.ArgumentTypeError("need 'off' and at least one shadow configuration, once")
    return [OFF, *(n for n in names if n != OFF)]


def round_order(configs: Sequence[str], round_: int) -> list[str]:
    """A B C in even rounds, C B A in odd ones: drift over the run hits every config alike."""
    return list(configs) if round_ % 2 == 0 else list(configs)[::-1]
