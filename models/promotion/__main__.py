"""``python -m models.promotion promote [--tag T] | rollback | status`` (``make promote`` etc.)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import get_args

from models.promotion.gate import LATENCY_CALLS
from models.promotion.workflow import promote, rollback
from models.settings import ModelRuntime, ModelSettings
from models.store.stages import LifecycleError, status_table


def main(argv: Sequence[str] | None = None) -> int:
    """Run one promotion command; exit 0 done, 1 refused by the gate, 2 impossible."""
    parser = argparse.ArgumentParser(prog="python -m models.promotion", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    prom = sub.add_parser("promote", help="gate the newest candidate (or --tag) against production")
    prom.add_argument("--tag", default=None, help="candidate tag (default: newest candidate)")
    prom.add_argument("--latency-calls", type=int, default=LATENCY_CALLS)
    prom.add_argument(
        "--runtime",
        choices=list(get_args(ModelRuntime)),
        default=None,
        help="evaluator timed for the latency gate (default: as served, DELIVERY_ETA_MODEL_RUNTIME)",
    )
    sub.add_parser("rollback", help="restore the previous production model")
    sub.add_parser("status", help="list versions and their stages")
    args = parser.parse_args(argv)
    try:
        if args.command == "promote":
            runtime = args.runtime or ModelSettings().model_runtime
            result = promote(args.tag, latency_calls=args.latency_calls, runtime=runtime)
            print(result.comparison.table())
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
