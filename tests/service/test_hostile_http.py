"""Hostile HTTP against a real server: framing, size limits, timeouts and unknown paths.

One server for the module (1 worker, short timeouts, soft open-files limit 256 and no raising of
it) so the idle-connection flood can exhaust its file descriptors within a test's time.
"""

from __future__ import annotations

import contextlib
import json
import resource
import secrets
import socket
import time
from collections.abc import Iterator

import httpx
import psutil
import pytest

from tests.harness.local_server import LocalServer, local_server
from tests.service.conftest import ORDER

HEADER_TIMEOUT_S = 2.0
BODY_TIMEOUT_S = 2.0
MAX_REQUESTS_PER_CONNECTION = 50
OPEN_FILES = 256


@pytest.fixture(scope="module")
def edge(registered, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:  # type: ignore[no-untyped-def]
    workdir = tmp_path_factory.mktemp("edge")
    env = {
        "DELIVERY_ETA_MODEL_TAG": registered.tag,
        "DELIVERY_ETA_PREDICTION_LOG_PATH": str(workdir / "predictions.sqlite3"),
        "DELIVERY_ETA_WORKERS": "1",
        "DELIVERY_ETA_HEADER_TIMEOUT_S": str(HEADER_TIMEOUT_S),
        "DELIVERY_ETA_BODY_TIMEOUT_S": str(BODY_TIMEOUT_S),
        "DELIVERY_ETA_MAX_REQUESTS_PER_CONNECTION": str(MAX_REQUESTS_PER_CONNECTION),
        "DELIVERY_ETA_RAISE_OPEN_FILES_LIMIT": "false",
        # every scrape rendered afresh: the tests look for a series right after one request
        "DELIVERY_ETA_METRICS_CACHE_S": "0",
    }
    # The server inherits a low soft limit; this process gets its own back once it is up.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (OPEN_FILES, hard))
    try:
        with local_server(workdir / "server.log", env=env, ready_timeout_s=300) as running:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
            yield running
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def _port(server: LocalServer) -> int:
    return int(server.url.rsplit(":", 1)[1])


def _exchange(server: LocalServer, data: bytes, timeout_s: float = 10) -> tuple[bytes, bool]:
    """Send ``data`` on a new connection; everything answered, and whether the server closed."""
    with socket.create_connection(("127.0.0.1", _port(server)), timeout=timeout_s) as sock:
        # Refused before we finished sending: the answer may still be readable.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(data)
        received, closed = b"", False
        try:
            while chunk := sock.recv(65536):
                received += chunk
            closed = True
        except ConnectionResetError:
            closed = True
        except TimeoutError:
            pass
        return received, closed


def _statuses(raw: bytes) -> list[int]:
    return [int(line.split()[1]) for line in raw.split(b"\r\n") if line.startswith(b"HTTP/1.1 ")]


def _series(metrics_text: str) -> list[str]:
    return [line for line in metrics_text.splitlines() if line and not line.startswith("#")]


def _worker_rss_mib(server: LocalServer) -> float:
    processes = psutil.Process(server.proc.pid).children(recursive=True)
    return max(p.memory_info().rss for p in processes) / 2**20


# --------------------------------------------------------------------------- finding 1: paths


def test_unknown_paths_add_no_metric_series(edge: LocalServer) -> None:
    with httpx.Client(base_url=edge.url, timeout=30) as client:
        client.get("/no-such-page")  # the one series every unknown path shares, made first
        before = client.get("/metrics").text
        paths = [
            *(f"/{secrets.token_hex(8)}" for _ in range(1000)),
            *(f"/v1/{secrets.token_hex(8)}" for _ in range(1000)),
            *(f"/static_content/{secrets.token_hex(8)}" for _ in range(900)),
            *(f"/{secrets.token_hex(8)}/{'x' * 4000}" for _ in range(100)),
        ]
        statuses = {client.get(path).status_code for path in paths}
        after = client.get("/metrics").text
    assert statuses == {404}
    assert len(_series(after)) == len(_series(before)), "unknown paths added series"
    # Same series, new values: a count's digits may grow, nothing else.
    assert len(after) < len(before) * 1.05 + 2048, (len(before), len(after))


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/livez", 200),
        ("/docs.json", 200),
        ("/static_content/index.css", 200),
        ("/health", 200),
        ("/v1/predict", 405),  # known route, wrong method: BentoML's own answer
    ],
)
def test_known_paths_are_served_and_labelled_as_themselves(
    edge: LocalServer, path: str, status: int
) -> None:
    with httpx.Client(base_url=edge.url, timeout=30) as client:
        assert client.get(path).status_code == status
        metrics = client.get("/metrics").text
    if path != "/livez":  # BentoML does not count its probe routes
        assert f'endpoint="{path}"' in metrics


# --------------------------------------------------------------------------- finding 6: limits


def test_a_64_kib_request_target_is_414_and_the_connection_closed(edge: LocalServer) -> None:
    raw, closed = _exchange(edge, b"GET /livez?q=" + b"a" * 65536 + b" HTTP/1.1\r\nHost: t\r\n\r\n")
    assert _statuses(raw) == [414] and closed


def test_a_request_target_under_the_limit_is_served(edge: LocalServer) -> None:
    raw, _ = _exchange(
        edge, b"GET /livez?q=" + b"a" * 4000 + b" HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )
    assert _statuses(raw) == [200]


@pytest.mark.parametrize(
    "headers",
    [b"X-Big: " + b"a" * 40_000 + b"\r\n", b"X-A: b\r\n" * 20_000],
    ids=["one-40-kib-header", "20k-small-headers"],
)
def test_a_header_block_over_the_limit_is_431_and_the_connection_closed(
    edge: LocalServer, headers: bytes
) -> None:
    raw, closed = _exchange(edge, b"GET /livez HTTP/1.1\r\nHost: t\r\n" + headers + b"\r\n")
    assert _statuses(raw) == [431] and closed


# --------------------------------------------------------------------------- finding 2: framing


def test_content_length_with_transfer_encoding_is_400_closed_and_nothing_after_it_served(
    edge: LocalServer,
) -> None:
    body = json.dumps(ORDER).encode()
    smuggled = b"GET /livez HTTP/1.1\r\nHost: t\r\n\r\n"
    for framing in (
        b"Content-Length: 10\r\nTransfer-Encoding: chunked\r\n",
        b"Transfer-Encoding: chunked\r\nContent-Length: 10\r\n",
    ):
        request = (
            b"POST /v1/predict HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            + framing
            + b"\r\n"
            + b"%x\r\n" % len(body)
            + body
            + b"\r\n0\r\n\r\n"
        )
        raw, closed = _exchange(edge, request + smuggled)
        assert _statuses(raw) == [400] and closed, raw[:200]


def _stream_chunked(server: LocalServer, head: bytes, total: int) -> tuple[bytes, int]:
    """POST ``total`` bytes as 64 KiB chunks; the answer and how many bytes got sent."""
    sock = socket.create_connection(("127.0.0.1", _port(server)), timeout=30)
    chunk = b"[" + b" " * 65534 + b"]"
    sent = 0
    try:
        sock.sendall(head)
        while sent < total:
            sock.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
            sent += len(chunk)
        sock.sendall(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass
    received = b""
    try:
        while data := sock.recv(65536):
            received += data
    except (ConnectionResetError, TimeoutError):
        pass
    sock.close()
    return received, sent


@pytest.mark.parametrize("declared", [b"", b"Content-Length: 10\r\n"], ids=["chunked", "both"])
def test_a_chunked_body_over_the_limit_is_refused_while_it_streams(
    edge: LocalServer, declared: bytes
) -> None:
    rss_before = _worker_rss_mib(edge)
    head = (
        b"POST /v1/predict/batch HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        + declared
        + b"Transfer-Encoding: chunked\r\n\r\n"
    )
    raw, sent = _stream_chunked(edge, head, total=100 * 2**20)
    assert _statuses(raw) in ([413], [400]), raw[:200]
    assert sent < 100 * 2**20, "the server read the whole 100 MiB stream"
    assert _worker_rss_mib(edge) - rss_before < 50


def test_a_chunked_trailer_field_is_refused(edge: LocalServer) -> None:
    # uvicorn appends trailer fields to the request's headers, where no header limit counted them.
    body = json.dumps(ORDER).encode()
    raw, closed = _exchange(
        edge,
        b"POST /v1/predict HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
        + b"%x\r\n" % len(body)
        + body
        + b"\r\n0\r\nX-Trailer: 1\r\n\r\n",
    )
    assert _statuses(raw) == [431] and closed, raw[:300]


def test_an_endless_trailer_line_is_cut_off(edge: LocalServer) -> None:
    # An unfinished trailer line is buffered inside httptools, out of every callback's sight:
    # the bytes after the header block that are not body bytes are capped like a header block.
    sock = socket.create_connection(("127.0.0.1", _port(edge)), timeout=30)
    sock.sendall(
        b"POST /v1/predict HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-Trailer: "
    )
    sent = 0
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        while sent < 20 * 2**20:
            sock.sendall(b"a" * 65536)
            sent += 65536
    received = b""
    with contextlib.suppress(ConnectionResetError, TimeoutError):
        while data := sock.recv(65536):
            received += data
    sock.close()
    assert sent < 20 * 2**20, "the server read a 20 MiB trailer line"
    assert 431 in _statuses(received) or received == b"", received[:200]


def test_an_invalid_body_with_20k_unknown_keys_is_refused_cheaply(edge: LocalServer) -> None:
    body = json.dumps({**ORDER, **{f"k{i}": 1 for i in range(20_000)}}).encode()
    with httpx.Client(base_url=edge.url, timeout=30) as client:
        response = client.post(
            "/v1/predict", content=body, headers={"content-type": "application/json"}
        )
    assert response.status_code == 400
    assert len(response.content) < 1024, len(response.content)
    assert "keys" in response.json()["error"]


# --------------------------------------------------------------------------- finding 6: timeouts


def test_idle_and_slowloris_connections_are_closed_and_livez_recovers(edge: LocalServer) -> None:
    port = _port(edge)
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(OPEN_FILES + 44)]
    slow = [socket.create_connection(("127.0.0.1", port)) for _ in range(10)]
    try:
        for sock in slow:
            sock.sendall(b"GET /livez HTTP/1.1\r\nHost: t\r\n")  # and never the blank line
        margin_s = 10.0
        deadline = time.monotonic() + HEADER_TIMEOUT_S + margin_s
        answered = False
        while time.monotonic() < deadline and not answered:
            try:
                answered = httpx.get(f"{edge.url}/livez", timeout=1).status_code == 200
            except httpx.HTTPError:
                time.sleep(0.2)
        assert answered, "/livez still starved by idle connections"
        for sock in slow:  # each one answered 408 and closed, or reset if never read
            sock.settimeout(HEADER_TIMEOUT_S + margin_s)
            with contextlib.suppress(ConnectionResetError):
                assert _statuses(sock.recv(4096)) in ([], [408])
    finally:
        for sock in idle + slow:
            sock.close()


def test_a_stalled_body_is_closed(edge: LocalServer) -> None:
    started = time.monotonic()
    raw, closed = _exchange(
        edge,
        b"POST /v1/predict HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100\r\n\r\n{",
        timeout_s=BODY_TIMEOUT_S + 10,
    )
    assert closed, "a stalled body kept its connection open"
    assert time.monotonic() - started < BODY_TIMEOUT_S + 10
    assert _statuses(raw) in ([], [408])


# --------------------------------------------------------------------------- finding 6: balance


def test_a_keep_alive_connection_is_closed_after_max_requests(edge: LocalServer) -> None:
    with httpx.Client(base_url=edge.url, timeout=30) as client:
        closes = [
            client.get("/livez").headers.get("connection")
            for _ in range(MAX_REQUESTS_PER_CONNECTION)
        ]
    assert closes[-1] == "close"
    assert set(closes[:-1]) == {None}


# --------------------------------------------------------------------------- the refusals metric


def test_refusals_are_counted_by_reason(edge: LocalServer) -> None:
    _exchange(edge, b"GET /livez?q=" + b"a" * 10_000 + b" HTTP/1.1\r\nHost: t\r\n\r\n")
    metrics = httpx.get(f"{edge.url}/metrics", timeout=30).text
    refusals = [s for s in _series(metrics) if s.startswith("delivery_eta_http_refusals_total{")]
    assert any('reason="request_target_too_long"' in s for s in refusals), refusals
    assert all(float(s.rsplit(" ", 1)[1]) >= 0 for s in refusals)


def test_the_server_still_answers_after_all_of_it(edge: LocalServer) -> None:
    # Run last in the module: nothing above may have broken the worker.
    response = httpx.post(f"{edge.url}/v1/predict", json=ORDER, timeout=30)
    assert response.status_code == 200
