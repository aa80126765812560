"""A stand-in for the service that serves a given feature contract: ``GET /contract``, and
``/v1/predict`` + ``/v1/predict/batch`` validating bodies against it (400 naming the fields,
else a deterministic answer of the service's shape). Lets the tools that read a served contract
be tested against any contract without training a model for it."""

from __future__ import annotations

import contextlib
import json
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from models.contract import FeatureContract
from models.contract.request import order_problems

MAX_BATCH_ROWS = 1000


@dataclass
class ContractStub:
    """The running stub: its URL and what it was sent."""

    url: str
    contract: FeatureContract | None
    requests: Counter[str] = field(default_factory=Counter)
    refusals: list[str] = field(default_factory=list)


def answer(order: dict[str, Any]) -> dict[str, Any]:
    """The stub's prediction of a valid order: deterministic, in the service's fields."""
    point = 15.0 + (sum(map(ord, json.dumps(order, sort_keys=True))) % 400) / 10
    return {
        "predicted_delivery_time_min": point,
        "confidence_interval_lower": point - 5.0,
        "confidence_interval_upper": point + 5.0,
        "model_version": "delivery_eta:stub",
        "prediction_id": str(uuid.uuid4()),
        "latency_ms": 0.1,
        "features_source": {},
    }


@contextlib.contextmanager
def contract_stub(contract: FeatureContract | None) -> Iterator[ContractStub]:
    """Serve ``contract`` on a free loopback port until the block ends (None: a service from
    before ``/contract``, which answers 404 there)."""
    state = ContractStub("", contract)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as load generators expect

        def log_message(self, *args: Any) -> None:  # quiet
            pass

        def _send(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            state.requests[f"GET {self.path}"] += 1
            if self.path == "/contract" and state.contract is not None:
                self._send(200, state.contract.metadata())
            elif self.path == "/health":
                self._send(200, {"status": "ok", "model_version": "delivery_eta:stub"})
            elif self.path in ("/readyz", "/livez"):
                self._send(200, {"status": "ready"})
            else:
                self._send(404, {"error": "not found"})

        def _refuse(self, problems: list[str]) -> None:
            state.refusals.append("; ".join(problems))
            self._send(400, {"error": "invalid request", "detail": problems})

        def do_POST(self) -> None:
            state.requests[f"POST {self.path}"] += 1
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                body = json.loads(raw)
            except ValueError:
                self._refuse(["body: not JSON"])
                return
            contract = state.contract
            assert contract is not None, "the stub validates bodies only with a contract"
            if self.path == "/v1/predict":
                if not isinstance(body, dict):
                    self._refuse(["body: not one order"])
                    return
                problems = order_problems(contract, body)
                self._refuse(problems) if problems else self._send(200, answer(body))
            elif self.path == "/v1/predict/batch":
                orders = body.get("orders") if isinstance(body, dict) else None
                if not isinstance(orders, list) or not 1 <= len(orders) <= MAX_BATCH_ROWS:
                    self._refuse(["orders: 1 to 1000 orders"])
                    return
                problems = [
                    f"orders.{i}.{p}"
                    for i, order in enumerate(orders)
                    for p in (
                        order_problems(contract, order)
                        if isinstance(order, dict)
                        else ["not an order"]
                    )
                ]
                if problems:
                    self._refuse(problems)
                    return
                predictions = [answer(order) for order in orders]
                self._send(200, {"predictions": predictions, "model_version": "delivery_eta:stub"})
            else:
                self._send(404, {"error": "not found"})

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        # socketserver's default backlog is 5; a load generator opening 20 connections at once
        # on a busy machine must not meet a full accept queue (a real server's is 128 or more).
        request_queue_size = 128

        def handle_error(self, request: Any, client_address: Any) -> None:
            pass  # a load generator hanging up mid-answer is no error of the stub

    server = Server(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
