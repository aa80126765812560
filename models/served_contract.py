"""The contract a running service or a stored model serves, for the tools that build requests.

Tools that talk to a running service (the canary, the load tests and benchmarks, the image and
compose smoke tests) read its contract from ``GET /contract`` (the served model's
``contract.metadata()``); tools that run offline read it from the model store or a contract
file. A service from before ``/contract`` existed (404) serves the default contract's API.
Bodies are then built with :mod:`models.contract.bodies`.

    python -m models.served_contract example --url URL [--unknown-entities] [--set F=JSON ...]
    python -m models.served_contract entities --url URL
    python -m models.served_contract bodies --url URL --out FILE --count N [--rows R] [--seed S]

``example`` prints one valid body (the contract's example order), ``entities`` one line per
entity field (``field key feature``), ``bodies`` writes a bodies file for a wrk script (one JSON
body per line; entity ids known to the served model's store when it is in this machine's model
store). Shell scripts use these instead of writing a body by hand.

It sits beside ``contract`` and ``store``, not in ``contract``: it reads the model store (a
stored model's contract, its entity table), and the store imports the contract.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from models.contract.bodies import body_lines, example_order, unknown_id
from models.contract.golden_orders import canary_ids
from models.contract.loading import (
    ContractError,
    contract_from_metadata,
    default_contract,
    load_contract,
)
from models.contract.spec import FeatureContract

CONTRACT_ROUTE = "/contract"
KNOWN_IDS_LIMIT = 2000
"""Most known ids per entity a tool keeps (spread over the store's table)."""
MAX_BODIES = 10_000
"""Most bodies one bodies file holds (the wrk scripts refuse more)."""
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))
"""Loopback calls must not go through a proxy the environment names."""


class ContractUnavailable(RuntimeError):
    """The contract cannot be read (service unreachable, not a contract, model not stored)."""


def fetch_contract(url: str, timeout_s: float = 10.0) -> FeatureContract:
    """The contract the service at ``url`` serves (``GET /contract``); the default contract
    when the service answers 404 there (it predates ``/contract`` and serves the default
    API). :class:`ContractUnavailable` if it cannot be read."""
    address = url.rstrip("/") + CONTRACT_ROUTE
    try:
        with _NO_PROXY.open(address, timeout=timeout_s) as response:
            data = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return default_contract()
        raise ContractUnavailable(f"GET {address}: HTTP {exc.code}") from None
    except (OSError, ValueError) as exc:
        raise ContractUnavailable(f"GET {address}: {type(exc).__name__}: {exc}") from None
    try:
        return FeatureContract.model_validate(data)
    except ValidationError as exc:
        raise ContractUnavailable(f"GET {address}: not a feature contract: {exc}") from None


def served_model_version(url: str, timeout_s: float = 10.0) -> str | None:
    """The model version the service at ``url`` reports on ``/health`` (None if it does not
    answer)."""
    try:
        with _NO_PROXY.open(url.rstrip("/") + "/health", timeout=timeout_s) as response:
            return str(json.loads(response.read())["model_version"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def stored_contract(tag: str) -> FeatureContract:
    """The contract of model ``tag`` in this machine's model store (``BENTOML_HOME``); the
    default contract for a model registered before contracts were stored."""
    stored = _stored_model(tag)
    if stored is None:
        raise ContractUnavailable(f"model {tag!r} is not in the model store (BENTOML_HOME)")
    try:
        return contract_from_metadata(stored.info.metadata) or default_contract()
    except ContractError as exc:
        raise ContractUnavailable(f"model {tag}: {exc}") from None


def known_entity_ids(
    tag: str, contract: FeatureContract, limit: int = KNOWN_IDS_LIMIT
) -> dict[str, list[str]] | None:
    """Per entity field, ids the model ``tag`` has aggregates for (at most ``limit``, spread
    over its table, sorted): what a load test sends as known entities. None when the model is
    not in this machine's store."""
    # The store's layout; imported here, so a tool that only fetches a contract loads no bentoml.
    from models.store.artifact import ENTITY_FILE

    stored = _stored_model(tag)
    if stored is None:
        return None
    try:
        tables = json.loads((Path(stored.path) / ENTITY_FILE).read_text())
    except (OSError, ValueError):
        return None
    known = {}
    for field in contract.entity_fields:
        ids = sorted(tables.get(contract.entity_feature(field), {}))
        step = max(1, len(ids) // limit)
        known[field] = ids[::step][:limit]
    return known


def _stored_model(tag: str) -> Any:
    import bentoml  # heavy: only when a tool asks the model store

    try:
        return bentoml.models.get(tag)
    except (bentoml.exceptions.BentoMLException, ValueError):
        return None


def load_contract_file(path: str | Path) -> FeatureContract:
    """A contract file: a served contract saved as JSON (``GET /contract``'s answer), else a
    YAML contract (``load_contract``: errors name the line). JSON is read as JSON: YAML 1.1
    would read a number such as ``1e-05`` as text."""
    source = Path(path)
    if source.suffix == ".json":
        try:
            return FeatureContract.model_validate(json.loads(source.read_text(encoding="utf-8")))
        except (OSError, ValueError) as exc:  # pydantic's ValidationError is a ValueError
            raise ContractUnavailable(f"{source}: not a feature contract: {exc}") from None
    try:
        return load_contract(source)
    except ContractError as exc:
        raise ContractUnavailable(str(exc)) from None


def resolve_contract(
    *, url: str | None = None, contract_file: str | Path | None = None, model_tag: str | None = None
) -> FeatureContract:
    """The contract a tool builds its bodies from: ``contract_file`` if given, else the one
    the service at ``url`` serves, else model ``model_tag``'s, else the default contract."""
    if contract_file is not None:
        return load_contract_file(contract_file)
    if url is not None:
        return fetch_contract(url)
    if model_tag is not None:
        return stored_contract(model_tag)
    return default_contract()


def load_ids(url: str, contract: FeatureContract) -> dict[str, list[str]] | None:
    """Known entity ids of the model the service at ``url`` serves, from this machine's model
    store (None when it is not there: bodies then use ids derived from the examples)."""
    tag = served_model_version(url)
    return None if tag is None else known_entity_ids(tag, contract)


def write_bodies_file(
    path: Path,
    contract: FeatureContract,
    *,
    count: int,
    rows: int | None = None,
    seed: int = 0,
    known_ids: Mapping[str, Sequence[str]] | None = None,
) -> Path:
    """Write ``count`` bodies (single orders, or ``rows``-order batches) to ``path``, one JSON
    body per line, for a wrk script to cycle through."""
    if not 1 <= count <= MAX_BODIES:
        raise ValueError(f"count must be within 1..{MAX_BODIES}")
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = body_lines(contract, count=count, rows=rows, seed=seed, known_ids=known_ids)
    path.write_text("".join(line + "\n" for line in lines))
    return path


def _parse_set(items: Sequence[str]) -> dict[str, Any]:
    values = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep:
            raise SystemExit(f"--set {item!r}: expected FIELD=JSON")
        try:
            values[name] = json.loads(text)
        except ValueError:
            values[name] = text  # a bare word: a string
    return values


def main(argv: Sequence[str] | None = None) -> int:
    """Command line (see the module docstring); exit 2 with one line if the contract cannot
    be read."""
    parser = argparse.ArgumentParser(
        prog="python -m models.served_contract", description=__doc__.splitlines()[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    commands = {
        "example": "one valid body: the contract's example order",
        "entities": "one line per entity field: field key feature",
        "bodies": "a bodies file for a wrk script",
    }
    parsers = {name: sub.add_parser(name, help=text) for name, text in commands.items()}
    for each in parsers.values():
        each.add_argument("--url", help="a running service (GET /contract)")
        each.add_argument("--contract", type=Path, help="a contract file instead of --url")
    parsers["example"].add_argument(
        "--unknown-entities", action="store_true", help="entity ids no feature store holds"
    )
    parsers["example"].add_argument(
        "--canary-entities", action="store_true", help="the canary's ids (canary_<key>)"
    )
    parsers["example"].add_argument("--set", action="append", default=[], metavar="FIELD=JSON")
    bodies = parsers["bodies"]
    bodies.add_argument("--out", type=Path, required=True)
    bodies.add_argument("--count", type=int, default=256)
    bodies.add_argument("--rows", type=int, default=None, help="orders per body (a batch)")
    bodies.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        contract = resolve_contract(url=args.url, contract_file=args.contract)
    except ContractUnavailable as exc:
        print(f"contract: {exc}", file=sys.stderr)
        return 2
    if args.command == "example":
        import random

        order = example_order(contract)
        if args.unknown_entities:
            rng = random.Random()
            order.update({f: unknown_id(contract, f, rng) for f in contract.entity_fields})
        if args.canary_entities:
            order.update(canary_ids(contract))
        order.update(_parse_set(args.set))
        print(json.dumps(order))
    elif args.command == "entities":
        for field in contract.entity_fields:
            print(field, contract.entity_key(field), contract.entity_feature(field))
    else:
        known = load_ids(args.url, contract) if args.url else None
        write_bodies_file(
            args.out, contract, count=args.count, rows=args.rows, seed=args.seed, known_ids=known
        )
        print(f"wrote {args.count} bodies to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
