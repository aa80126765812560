"""Latency of lone 1000-row ``/v1/predict/batch`` calls on an otherwise idle server.

    python -m loadtest.lone_batch --url http://127.0.0.1:3000 [--rows 1000] [--calls 40]

Sends the same body ``--calls`` times, one at a time on one keep-alive connection, drops the
first 5 (warm-up) and prints the p50 and the minimum. The body's orders are random orders of the
contract the service serves (``GET /contract``; ``models.contract.bodies``). Loopback only,
like every load here.
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import statistics
import time
from urllib.parse import urlsplit

from models.contract.bodies import OrderGenerator
from models.served_contract import fetch_contract, load_ids


def main() -> None:
    """Parse the flags, send the calls, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:3000")
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--calls", type=int, default=40)
    args = parser.parse_args()
    contract = fetch_contract(args.url)
    generator = OrderGenerator(contract, load_ids(args.url, contract))
    body = json.dumps({"orders": generator.orders(random.Random(1), args.rows)})
    target = urlsplit(args.url)
    connection = http.client.HTTPConnection(target.hostname or "127.0.0.1", target.port or 80)
    latencies_ms = []
    for _ in range(args.calls):
        started = time.perf_counter()
        connection.request("POST", "/v1/predict/batch", body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        response.read()
        latencies_ms.append((time.perf_counter() - started) * 1000)
        if response.status != 200:
            raise SystemExit(f"HTTP {response.status}")
        time.sleep(0.05)
    measured = latencies_ms[5:]
    print(
        f"lone {args.rows}-row calls: p50 {statistics.median(measured):.1f} ms, "
        f"min {min(measured):.1f} ms (n={len(measured)} after 5 warm-up calls)"
    )


if __name__ == "__main__":
    main()
