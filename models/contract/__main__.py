"""Feature-contract tools.

python -m models.contract draft DATA [--out contract.yaml] [--target COL] [--timestamp COL]
                                     [--max-categories N] [--max-rows N] [--columns a,b]
                                     [--exclude x,y] [--head] [--force]
python -m models.contract check CONTRACT

Exit status: 0 done, 1 the file or the contract cannot be used, 2 a flag is needed (the
target or the timestamp cannot be told apart, too many columns) or the command line is wrong.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from models.contract.draft import (
    DEFAULT_MAX_CATEGORIES,
    DEFAULT_MAX_ROWS,
    DraftError,
    draft_contract,
)
from models.contract.loading import ContractError, load_contract


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m models.contract",
        description="Draft and check feature contracts (docs/contract.md).",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    draft = commands.add_parser(
        "draft",
        help="draft a contract from an order history",
        description="Draft a feature contract from an order history (CSV, Parquet, or a "
        "directory of Parquet): each column's kind, bounds, values; the target and timestamp "
        "columns. The YAML's comments say what was inferred and what was left out, and why.",
    )
    draft.add_argument("data", help="orders.csv, orders.parquet, or a directory of .parquet")
    draft.add_argument("--out", default="contract.yaml", help="where to write it; - prints it")
    draft.add_argument("--target", help="the delivery-time column (default: detected)")
    draft.add_argument("--timestamp", help="the order-time column (default: detected)")
    draft.add_argument(
        "--max-categories",
        type=int,
        default=DEFAULT_MAX_CATEGORIES,
        help="most values a text column may have to be a category (default %(default)s)",
    )
    draft.add_argument(
        "--max-rows",
        type=int,
        default=DEFAULT_MAX_ROWS,
        help="infer from a uniform sample of at most this many rows (default %(default)s)",
    )
    draft.add_argument(
        "--columns",
        type=_names,
        help="read only these columns (comma-separated; with the target and the timestamp, "
        "or pass --target / --timestamp)",
    )
    draft.add_argument(
        "--exclude", type=_names, default=[], help="columns to leave out (comma-separated)"
    )
    draft.add_argument(
        "--head",
        action="store_true",
        help="read only the first --max-rows rows (quick on a huge file; later rows unseen)",
    )
    draft.add_argument("--force", action="store_true", help="overwrite an existing --out file")

    check = commands.add_parser(
        "check",
        help="validate a contract file",
        description="Validate a contract; every problem is listed with its line.",
    )
    check.add_argument("contract")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit status."""
    args = _parser().parse_args(argv)
    if args.command == "check":
        try:
            contract = load_contract(args.contract)
        except ContractError as exc:
            print(exc, file=sys.stderr)
            return 1
        kinds = ", ".join(f"{name} ({spec.kind})" for name, spec in contract.fields.items())
        print(f"{args.contract}: valid; {len(contract.fields)} fields: {kinds}")
        print(f"  model inputs: {', '.join(contract.feature_names)}")
        return 0

    out = None if args.out == "-" else Path(args.out)
    if out is not None and out.exists() and not args.force:
        print(
            f"{out} exists (an edited contract?): pass --force to overwrite it, or another --out",
            file=sys.stderr,
        )
        return 1
    if args.max_rows < 1:
        print("--max-rows must be at least 1", file=sys.stderr)
        return 2
    try:
        drafted = draft_contract(
            args.data,
            target=args.target,
            timestamp=args.timestamp,
            max_categories=args.max_categories,
            max_rows=args.max_rows,
            columns=args.columns,
            exclude=args.exclude,
            head=args.head,
        )
    except DraftError as exc:
        print(f"contract draft: {exc}", file=sys.stderr)
        return exc.exit_code
    if out is None:
        sys.stdout.write(drafted.text)
    else:
        out.write_text(drafted.text, encoding="utf-8")
    print(drafted.summary(), file=sys.stderr)
    if out is not None:
        print(
            f"wrote {out}: review it, then `make train DATA={args.data} CONTRACT={out}`",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
