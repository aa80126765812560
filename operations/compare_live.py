"""``make compare``: the champion and the challenger side by side on the live requests both scored.

    python -m operations.compare_live [--hours 24] [--json]
        [--backend sqlite|redis] [--path DB] [--redis-url URL] [--redis-prefix PREFIX]

Reads the prediction log the service's settings name (``DELIVERY_ETA_PREDICTION_LOG_*``; the
options override them), either backend through the log's read interface
(``prediction_log.reading``), and prints per (champion, challenger) pair found in the blocks
created in the last ``--hours``: rows predicted and shadowed, labelled rows, MAE and interval
coverage of both models over the same labelled rows with a 95 % confidence interval on the
paired difference, the PSI between their point predictions, and their inference times
(``models.promotion.live_comparison`` has the statistics and their method).

It only reads, while the service keeps writing, and streams: the blocks come a page at a time
(``prediction_log.sqlite_reader`` and ``prediction_log.redis_reader`` say how each backend
pages), and what is kept across pages is the running sums and fixed reservoirs of
``models.promotion.live_comparison`` (a few MB per pair), whatever the log's size.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Sequence

from models.promotion.live_builder import LiveComparisonBuilder
from models.promotion.live_comparison import LiveComparison
from operations.settings import InvalidSettings, add_log_options, settings_from_options
from prediction_log.location import LogLocation, announce
from prediction_log.reading import LogReadError


class CompareError(Exception):
    """The comparison cannot run (no log, not a log, unreachable, bad settings): one line."""


def compare_live(
    location: LogLocation, hours: float | None = 24.0, *, now: float | None = None
) -> LiveComparison:
    """The live champion-vs-challenger comparison of the blocks created in the last ``hours``
    (None: every block the log holds) of the log at ``location``
    (``OperationsSettings.log_location``: the log the service writes).

    ``now`` (epoch seconds) defaults to the clock. Read-only; :class:`CompareError` (one line) if
    the log does not exist, is not a prediction log, or its Redis is unreachable. A window
    without shadowed rows is not an error: the result has no pairs and says so
    (``LiveComparison.no_challenger_message``).
    """
    if hours is not None and not hours > 0:
        raise CompareError("the window must be a positive number of hours")
    since = None if hours is None else (time.time() if now is None else now) - hours * 3600
    builder = LiveComparisonBuilder()
    try:
        with location.reader() as log:
            for page in log.scored_blocks(since):
                builder.add_blocks(page)
    except LogReadError as exc:
        raise CompareError(str(exc)) from exc
    return builder.result(hours, location.describe())


def main(argv: Sequence[str] | None = None) -> int:
    """Print the comparison (a table, or ``--json``); exit 0, also when the window holds no
    challenger data (it says so and how to get some). Exit 2, one line on stderr, if it cannot
    read the log."""
    parser = argparse.ArgumentParser(
        prog="python -m operations.compare_live",
        description="Champion vs challenger on the live requests both scored (prediction log).",
    )
    parser.add_argument(
        "--hours", type=float, default=24.0, help="blocks created in the last HOURS (default 24)"
    )
    parser.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    add_log_options(parser)
    args = parser.parse_args(argv)
    try:
        if not args.hours > 0 or not math.isfinite(args.hours):
            raise CompareError("--hours must be a positive number of hours")
        try:
            settings = settings_from_options(args)
        except InvalidSettings as exc:
            raise CompareError(str(exc)) from exc
        announce(settings.prediction_log, "compare", settings.redis_url)
        result = compare_live(settings.log_location(), args.hours)
    except CompareError as exc:
        print(f"compare: {exc}", file=sys.stderr, flush=True)
        return 2
    if args.json:
        print(json.dumps(result.to_dict()), flush=True)
    else:
        print(result.table(), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
