"""The sustained cell of the benchmark (loadtest/bench/sustained.py): parsing ``sustained.lua``'s
summary, merging windows into the whole run, the report; and the Lua script under a real wrk."""

from __future__ import annotations

import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from loadtest.bench.sustained import (
    QUANTILE_POINTS,
    SCRIPT,
    Sustained,
    Window,
    merged_quantile,
    parse_window,
)


def _output(quantiles_us: list[int], requests: int = 1000, non_2xx: int = 0) -> str:
    return (
        "Running 30s test @ http://127.0.0.1:1/v1/predict\n"
        f"SUSTAINED requests={requests} non2xx={non_2xx} socket_errors=1 max_us=250000\n"
        f"QUANTILES_US {','.join(str(q) for q in quantiles_us)}\n"
    )


def _window(start: int, ms: float, requests: int = 1000, tail_ms: float | None = None) -> Window:
    quantiles = [ms] * QUANTILE_POINTS
    if tail_ms is not None:  # the slowest 5 %
        quantiles[-50:] = [tail_ms] * 50
    return Window(start, requests, 0, 0, quantiles, max(quantiles), 500.0 + start)


def test_parse_window_reads_requests_errors_quantiles_and_max() -> None:
    window = parse_window(_output([1000 * (i // 100 + 1) for i in range(999)], 1000, 3), 60, 512)
    assert (window.start_s, window.requests, window.non_2xx, window.socket_errors) == (
        60,
        1000,
        3,
        1,
    )
    assert window.max_ms == 250.0
    assert window.quantile(50) == 5.0
    assert window.quantile(99) == 10.0
    assert window.rss_total_mib == 512


def test_parse_window_refuses_output_without_the_summary() -> None:
    with pytest.raises(ValueError, match=r"sustained\.lua"):
        parse_window("Requests/sec: 100\n", 0, 0)
    with pytest.raises(ValueError, match="999 quantiles"):
        parse_window(_output([1, 2, 3]), 0, 0)


def test_merged_quantiles_weigh_each_window_by_its_requests() -> None:
    fast = _window(0, 10.0, requests=9000)
    slow = _window(30, 100.0, requests=1000)
    assert merged_quantile([fast, slow], 50) == 10.0
    assert merged_quantile([fast, slow], 89) == 10.0
    assert merged_quantile([fast, slow], 95) == 100.0


def test_a_periodic_stall_in_one_window_shows_in_the_whole_run_p99() -> None:
    windows = [_window(s, 20.0) for s in range(0, 300, 30)]
    windows[5] = _window(150, 20.0, tail_ms=180.0)  # 5 % of one window's requests stalled
    assert merged_quantile(windows, 99) == 20.0
    assert merged_quantile(windows, 99.6) == 180.0


def test_report_has_the_whole_run_every_window_rss_and_errors() -> None:
    windows = [_window(0, 20.0, requests=1500), _window(30, 25.0, tail_ms=90.0)]
    windows[1].non_2xx = 2
    report = Sustained("service", windows, 480.0).report()
    assert "60 s in 30-s windows" in report
    assert "| whole run | 2500 | 20.0 | 25.0 | 90.0 | 90.0 | 2 |" in report
    assert "| 0-30 s | 1500 | 20.0 | 20.0 | 20.0 | 20.0 | 0 |" in report
    assert "| 30-60 s | 1000 | 25.0 | 25.0 | 90.0 | 90.0 | 2 |" in report
    assert "480 MiB at the start, 530 MiB at the end" in report


class _Ok(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200 if b"ok" in self.path.encode() else 503)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def loopback_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk not installed (make system-deps)")
def test_sustained_lua_prints_the_summary_under_a_real_wrk(
    loopback_server: str, tmp_path: Path
) -> None:
    bodies = tmp_path / "bodies.jsonl"
    bodies.write_text('{"a": 1}\n{"a": 2}\n')
    for path, non_2xx in (("/ok", False), ("/refused", True)):
        done = subprocess.run(
            [
                "wrk",
                "-t1",
                "-c2",
                "-d1s",
                "-s",
                str(SCRIPT),
                loopback_server + path,
                "--",
                str(bodies),
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        window = parse_window(done.stdout, 0, 0)
        assert window.requests > 0
        assert (window.non_2xx == window.requests) is non_2xx
        assert 0 < window.quantile(50) <= window.quantile(99.9) <= window.max_ms
