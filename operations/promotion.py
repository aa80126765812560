"""``python -m operations.promotion promote [--tag T] [--min-shadow-rows N [--shadow-hours H]]
[--allow-api-break] | rollback | status`` (``make promote`` etc.): the model lifecycle's
commands; ``models.promotion`` holds the gate and the workflow they run."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from functools import partial
from typing import get_args

from models.promotion.latency import LATENCY_CALLS
from models.promotion.live_comparison import LiveComparison
from models.promotion.report import comparison_table
from models.promotion.workflow import promote, rollback
from models.settings import ModelRuntime, ModelSettings
from models.store.stages import LifecycleError, status_table


def _read_service_log(hours: float | None) -> LiveComparison:
    """The live comparison from the log the service's settings name (``DELIVERY_ETA_*``);
    imported when the gate is asked for live evidence (the log's readers are not needed
    otherwise)."""
    from operations.compare_live import CompareError, compare_live
    from operations.settings import InvalidSettings, operations_settings
    from prediction_log.location import announce

    try:
        settings = operations_settings()
        announce(settings.prediction_log, "promote", settings.redis_url)  # the evidence's log
        return compare_live(settings.log_location(), hours)
    except (CompareError, InvalidSettings) as exc:
        raise LifecycleError(f"cannot read the live shadow evidence: {exc}") from exc


def main(argv: Sequence[str] | None = None) -> int:
    """Run one promotion command; exit 0 done, 1 refused by the gate, 2 impossible."""
    parser = argparse.ArgumentParser(prog="python -m operations.promotion", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    prom = sub.add_parser("promote", help="gate the newest candidate (or --tag) against production")
    prom.add_argument(
        "--tag",
        default=None,
        help="candidate tag (default: the newest stage=candidate model the gate has not refused)",
    )
    prom.add_argument("--latency-calls", type=int, default=LATENCY_CALLS)
    prom.add_argument(
        "--runtime",
        choices=list(get_args(ModelRuntime)),
        default=None,
        help="evaluator timed for the latency gate (default: as served, DELIVERY_ETA_MODEL_RUNTIME)",
    )
    prom.add_argument(
        "--min-shadow-rows",
        type=int,
        default=None,
        metavar="N",
        help="also require N labelled prediction-log rows where the candidate shadowed "
        "production, with its live MAE within the gate's margin (default: holdout only)",
    )
    prom.add_argument(
        "--shadow-hours",
        type=float,
        default=None,
        metavar="H",
        help="with --min-shadow-rows: only blocks logged in the last H hours (default: all kept)",
    )
    prom.add_argument(
        "--allow-api-break",
        action="store_true",
        help="promote a candidate whose feature contract breaks production's API (a new "
        "required field, a removed field, a narrowed range or category set; docs/shadow.md)",
    )
    sub.add_parser("rollback", help="restore the previous production model")
    sub.add_parser("status", help="list versions and their stages")
    args = parser.parse_args(argv)
    try:
        if args.command == "promote":
            runtime = args.runtime or ModelSettings().model_runtime
            if args.min_shadow_rows is not None and args.min_shadow_rows < 1:
                raise LifecycleError("--min-shadow-rows must be at least 1")
            if args.shadow_hours is not None and args.min_shadow_rows is None:
                raise LifecycleError("--shadow-hours needs --min-shadow-rows")
            read_live = (
                None
                if args.min_shadow_rows is None
                else partial(_read_service_log, args.shadow_hours)
            )
            result = promote(
                args.tag,
                latency_calls=args.latency_calls,
                runtime=runtime,
                min_shadow_rows=args.min_shadow_rows,
                read_live=read_live,
                allow_api_break=args.allow_api_break,
            )
            print(result.chosen())
            print(comparison_table(result.comparison))
            print(result.summary())
            return 0 if result.promoted else 1
        if args.command == "rollback":
            print(rollback().summary())
            return 0
        print(status_table())
        return 0
    except LifecycleError as exc:
        print(f"delivery-eta lifecycle: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
