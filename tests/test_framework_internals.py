"""The private-API door (``framework_internals/``): pinned versions and every touch-point's shape.

When BentoML or uvicorn is upgraded, this file fails first and names the module to re-check.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import bentoml
import numpy as np
import pytest
import uvicorn
from bentoml._internal.marshal.dispatcher import Optimizer

import framework_internals as door
from framework_internals import bentoml_app, uvicorn_server, versions

RECHECK = (
    "framework_internals was verified against {verified}; installed is {installed}. "
    "Re-read each touch-point it lists against the new source, then update VERIFIED_WITH"
    " (framework_internals/versions.py)."
)
ROOT = Path(__file__).resolve().parents[1]


def test_installed_frameworks_are_the_versions_the_door_was_verified_with() -> None:
    drift = door.version_drift()
    assert not drift, "; ".join(
        RECHECK.format(verified=f"{name} {was}", installed=f"{name} {now}")
        for name, (was, now) in drift.items()
    )


def test_version_drift_reports_a_bumped_version(monkeypatch: pytest.MonkeyPatch) -> None:
    # What an upgrade looks like to the check above (the check must be able to fail).
    monkeypatch.setattr(versions, "VERIFIED_WITH", {**door.VERIFIED_WITH, "bentoml": "1.4.38"})
    assert door.version_drift() == {"bentoml": ("1.4.38", bentoml.__version__)}


def test_the_package_top_level_is_the_one_door() -> None:
    # Every public name of the modules behind the door is exported from its top level ...
    import importlib
    import pkgutil

    for module_info in pkgutil.iter_modules(door.__path__):
        module = importlib.import_module(f"framework_internals.{module_info.name}")
        public = {
            name
            for name, value in vars(module).items()
            if not name.startswith("_")
            and getattr(value, "__module__", module.__name__) == module.__name__
            and (callable(value) or name.isupper())
        }
        assert public <= set(door.__all__), (module.__name__, public - set(door.__all__))
    # ... and nothing outside the package imports those modules directly (tests excepted:
    # they patch a module's state).
    outside = [
        path.relative_to(ROOT).as_posix()
        for folder in ("models", "serving", "loadtest", "deploy", "examples")
        for path in (ROOT / folder).rglob("*.py")
        if "from framework_internals." in path.read_text(encoding="utf8")
    ] + [
        name
        for name in ("service.py", "train.py")
        if "from framework_internals." in (ROOT / name).read_text(encoding="utf8")
    ]
    assert outside == []


# --------------------------------------------------------------------------- 1. batching


async def test_batch_dispatcher_merges_row_matrices_and_sheds_through_the_fallback() -> None:
    calls: list[int] = []

    def shed() -> np.ndarray:
        raise RuntimeError("shed")

    dispatcher = door.batch_dispatcher(
        max_latency_ms=10_000, max_batch_size=100, max_wait_ms=2, fallback=shed
    )

    async def double(parts: list[np.ndarray]) -> list[np.ndarray]:
        calls.append(len(parts))
        return [part * 2 for part in parts]

    infer = dispatcher(double)
    try:
        out = await infer(np.ones((3, 2)))
    finally:
        dispatcher.shutdown()
    np.testing.assert_array_equal(out, np.full((3, 2), 2.0))
    assert calls == [1]
    assert dispatcher.fallback is shed


async def test_batch_dispatcher_takes_a_request_of_a_whole_batch_or_more_uncut() -> None:
    def shed() -> np.ndarray:
        raise RuntimeError("shed")

    dispatcher = door.batch_dispatcher(
        max_latency_ms=10_000, max_batch_size=100, max_wait_ms=2, fallback=shed
    )
    calls: list[list[int]] = []

    async def double(parts: list[np.ndarray]) -> list[np.ndarray]:
        calls.append([len(part) for part in parts])
        return [part * 2 for part in parts]

    infer = dispatcher(double)
    try:
        large, small = np.ones((250, 2)), np.ones((30, 2))
        out = await asyncio.gather(infer(large), infer(small))
    finally:
        dispatcher.shutdown()
    np.testing.assert_array_equal(out[0], large * 2)
    np.testing.assert_array_equal(out[1], small * 2)
    assert calls == [[250], [30]]  # BentoML alone: [[100], [100], [50, 30]]


async def _warmed_dispatcher(
    max_latency_ms: int, slow_s: float
) -> tuple[Any, Callable[[np.ndarray], Awaitable[np.ndarray]], list[int]]:
    """A dispatcher past BentoML's warm-up (11 quick calls train its optimizer), whose model
    call then takes ``slow_s``; the list holds each call's request count."""

    def shed() -> np.ndarray:
        raise RuntimeError("shed")

    dispatcher = door.batch_dispatcher(
        max_latency_ms=max_latency_ms, max_batch_size=100, max_wait_ms=2, fallback=shed
    )
    calls: list[int] = []

    async def double(parts: list[np.ndarray]) -> list[np.ndarray]:
        calls.append(len(parts))
        if len(calls) > 11:
            await asyncio.sleep(slow_s)
        return [part * 2 for part in parts]

    infer = dispatcher(double)
    for _ in range(11):
        await infer(np.ones((1, 2)))
    return dispatcher, infer, calls


async def test_batch_dispatcher_waits_for_a_running_call_instead_of_polling() -> None:
    dispatcher, infer, calls = await _warmed_dispatcher(10_000, slow_s=0.3)
    try:
        first = asyncio.ensure_future(infer(np.ones((5, 2))))
        await asyncio.sleep(0.02)  # the call is running: two more requests queue behind it
        looked = dispatcher.wakeups
        out = await asyncio.gather(first, infer(np.ones((3, 2))), infer(np.ones((4, 2))))
    finally:
        dispatcher.shutdown()
    assert [len(o) for o in out] == [5, 3, 4]
    assert calls[11:] == [1, 2]  # the two waiting requests share the next call
    # BentoML's controller looks every 1 ms while the call runs (~280 times here); this one
    # when a request arrives and when the call ends.
    assert dispatcher.wakeups - looked <= 6


async def test_batch_dispatcher_sheds_while_a_call_runs_once_the_wait_crosses_the_budget() -> None:
    dispatcher, infer, _ = await _warmed_dispatcher(200, slow_s=0.8)
    try:
        started = time.perf_counter()
        first = asyncio.ensure_future(infer(np.ones((5, 2))))
        await asyncio.sleep(0.02)
        waiting = [asyncio.ensure_future(infer(np.ones((1, 2)))) for _ in range(2)]
        done, _ = await asyncio.wait(waiting, return_when=asyncio.ALL_COMPLETED)
        shed_after = time.perf_counter() - started
        assert not first.done()  # both were shed while the call still ran
        await first
    finally:
        dispatcher.shutdown()
    assert all("shed" in str(task.exception()) for task in done)
    assert 0.2 <= shed_after < 0.7


def test_bentoml_controller_is_the_one_the_waiting_controller_copies() -> None:
    # framework_internals.batching._waiting_controller repeats CorkDispatcher.controller's
    # decisions (warm-up, shedding, waiting for company, dispatch) and only changes how it
    # waits for a running call: any change to these sources must be re-read against it.
    import hashlib

    from bentoml._internal.marshal.dispatcher import CorkDispatcher, NonBlockSema

    pinned = {
        CorkDispatcher.controller: "dafc788663463402",
        CorkDispatcher.inbound_call: "2c6278ea11900d05",
        NonBlockSema: "83ea37b766b1bf2d",
    }
    for code, digest in pinned.items():
        source = inspect.getsource(code)
        assert hashlib.sha256(source.encode()).hexdigest()[:16] == digest, (
            f"BentoML's {code.__qualname__} changed: re-read framework_internals/batching.py "
            "_waiting_controller against it, then update this digest"
        )


def test_optimizer_still_learns_o_a_o_b_wait_from_o_stat() -> None:
    plain = Optimizer(max_latency=10.0)
    assert {"o_a", "o_b", "wait", "o_stat"} <= set(vars(plain))
    plain.o_stat.extend([(10, 0.010, 0.001), (20, 0.020, 0.001), (40, 0.040, 0.001)])
    plain.trigger_refresh()
    assert plain.o_a == pytest.approx(0.001, rel=1e-3)
    assert plain.wait == pytest.approx(0.001)


def test_capped_optimizer_ignores_one_slow_call_and_caps_the_wait() -> None:
    optimizer = door.capped_optimizer(max_latency_s=10.0, max_wait_s=0.002)
    # A flood: batches of 30-34 rows at ~1 ms per row, and one call stalled for 0.5 s.
    samples = [(30 + i % 5, 0.001 * (30 + i % 5), 0.05) for i in range(40)] + [(34, 0.5, 0.05)]
    optimizer.o_stat.extend(samples)
    plain = Optimizer(max_latency=10.0)
    plain.o_stat.extend(samples)
    plain.trigger_refresh()
    optimizer.trigger_refresh()
    # BentoML's least-squares slope: ~12 ms per row, so 512 queued rows "need" > 6 s.
    assert plain.o_a > 0.01
    assert optimizer.o_a == pytest.approx(0.001, rel=0.01)
    assert plain.wait == pytest.approx(0.05)
    assert optimizer.wait == pytest.approx(0.002)


# --------------------------------------------------------------------------- 2. uvicorn


def test_uvicorn_server_has_the_exit_handler_and_servers_the_drain_relies_on() -> None:
    params = list(inspect.signature(uvicorn.Server.handle_exit).parameters)
    assert params == ["self", "sig", "frame"]
    server = uvicorn.Server(uvicorn.Config(app=None))
    assert hasattr(server, "should_exit")
    # Server.servers is set by startup(); the drain reads its listening sockets.
    assert "self.servers" in inspect.getsource(uvicorn.Server.startup)


def test_listening_sockets_reads_every_asyncio_server() -> None:
    class FakeAsyncioServer:
        def __init__(self, sockets: list[str] | None) -> None:
            self.sockets = sockets

    class FakeServer:
        servers = [FakeAsyncioServer(["a", "b"]), FakeAsyncioServer(None)]

    assert door.listening_sockets(FakeServer()) == ["a", "b"]


# --------------------------------------------------------------------------- 3. request logger


def test_bentoml_logs_failed_requests_to_the_logger_the_door_names() -> None:
    from _bentoml_impl.server import app
    from bentoml._internal.server import http_app

    assert app.log_exception is http_app.log_exception  # the new-style app uses it
    source = inspect.getsource(http_app)
    assert "logger = logging.getLogger(__name__)" in source
    assert http_app.__name__ == door.BENTOML_REQUEST_LOGGER
    assert door.bentoml_request_error_logger() is logging.getLogger(http_app.__name__)


# --------------------------------------------------------------------------- 14. API method binding


def test_bind_api_methods_keeps_one_bound_callable_that_bentoml_serves() -> None:
    from _bentoml_impl.server.app import ServiceAppFactory
    from _bentoml_sdk.method import APIMethod

    @bentoml.service
    class Counting:
        def __init__(self) -> None:
            self.calls = 0
            door.bind_api_methods(self)

        @bentoml.api
        def echo(self, x: int, y: int = 2) -> int:
            self.calls += 1
            return x * y

    # The binding the door keeps is what BentoML's endpoint reads: ``getattr(...).local``.
    assert not hasattr(APIMethod, "__set__") and not hasattr(APIMethod, "__delete__")
    instance = Counting.inner()
    bound = instance.echo
    assert instance.echo is bound and bound.local is bound and "echo" in vars(instance)
    assert bound(3) == 6 and bound(3, y=5) == 15 and instance.calls == 2
    assert "inspect.signature(self.func)" in inspect.getsource(APIMethod._local_call)
    # (Not served here: a second service app in one process registers BentoML's metrics twice.)
    assert "getattr(self._service_instance, name).local" in inspect.getsource(
        ServiceAppFactory.api_endpoint
    )


# --------------------------------------------------------------------------- 15. response headers


def test_prebound_response_headers_are_bentomls_own(monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    from _bentoml_impl.server.app import ServiceAppFactory
    from bentoml._internal.context import trace_context
    from starlette.responses import Response

    injected = ServiceAppFactory.__dict__["_add_response_headers"]
    monkeypatch.setattr(ServiceAppFactory, "_add_response_headers", injected)
    factory = SimpleNamespace(service=SimpleNamespace(name="delivery_eta"))
    trace_context.request_id = 0xABC
    try:
        before, after = Response(b"x"), Response(b"x")
        injected(factory, before)
        door.prebind_response_headers()
        prebound = ServiceAppFactory.__dict__["_add_response_headers"]
        assert prebound is not injected
        prebound(factory, after)
        door.prebind_response_headers()  # a second call keeps the first replacement
        assert ServiceAppFactory.__dict__["_add_response_headers"] is prebound
    finally:
        trace_context.request_id = None
    assert after.headers.items() == before.headers.items()
    assert after.headers["x-bentoml-request-id"] == format(0xABC, "016x")


# --------------------------------------------------------------------------- 4./5. model store


def test_write_model_labels_persists_labels_in_a_private_store(registered, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import shutil

    name, version = str(registered.tag).split(":")
    shutil.copytree(registered.path, tmp_path / "models" / name / version)
    with door.use_model_store(tmp_path / "models"):
        labels = door.write_model_labels(registered.tag, {"stage": "production", "n": "1"})
        assert labels["stage"] == "production"
        assert bentoml.models.get(registered.tag).info.labels["n"] == "1"
    # The session store's copy is untouched: the patch ended with the block.
    assert bentoml.models.get(registered.tag).info.labels["stage"] == "candidate"
    assert "stage: production" in (tmp_path / "models" / name / version / "model.yaml").read_text()


# --------------------------------------------------------------------------- 6. worker env


def test_bentoml_starts_workers_with_a_copy_of_the_serving_process_environment() -> None:
    import bentoml.serving

    assert "copy_env=True" in inspect.getsource(bentoml.serving.create_watcher)
    from _bentoml_impl.server import serving

    source = inspect.getsource(serving.serve_http)
    # Deployment hooks run before the workers' watcher is created.
    assert source.index("server_on_deployment(svc)") < source.index("create_watcher(")


# --------------------------------------------------------------------------- 12. worker processes


def test_bentoml_starts_each_service_worker_with_the_module_the_door_names() -> None:
    from _bentoml_impl.server import serving

    assert serving._SERVICE_WORKER_SCRIPT == door.BENTOML_WORKER_MODULE
    # Both ways BentoML starts workers (one process per worker, or circus) run `-m <module>`.
    source = inspect.getsource(serving)
    assert source.count('"-m",\n        _SERVICE_WORKER_SCRIPT,') >= 1
    assert source.count("_SERVICE_WORKER_SCRIPT,") >= 2
    assert door.is_bentoml_worker(["python", "-m", door.BENTOML_WORKER_MODULE, "."])
    assert not door.is_bentoml_worker(["python", "-m", "bentoml", "serve", "service:X"])


def test_bentoml_worker_processes_finds_the_workers_oldest_first_and_skips_the_rest() -> None:
    import subprocess
    import sys
    import textwrap
    import time

    import psutil

    # A process of its own stands in for `bentoml serve` (this test process may have real
    # servers of other tests under it): a helper child, and two "workers" whose command lines
    # carry `-m <BentoML's worker module>` (as arguments to `-c`, so they sleep).
    script = textwrap.dedent(
        f"""
        import subprocess, sys, time
        sleeper = "import time; time.sleep(30)"
        subprocess.Popen([sys.executable, "-c", sleeper])
        for _ in range(2):
            subprocess.Popen(
                [sys.executable, "-c", sleeper, "-m", {door.BENTOML_WORKER_MODULE!r}, "bento"]
            )
            time.sleep(0.05)  # distinct start times
        time.sleep(30)
        """
    )
    stand_in = subprocess.Popen([sys.executable, "-c", script])
    parent = psutil.Process(stand_in.pid)
    try:
        deadline = time.monotonic() + 20
        while len(parent.children()) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        children = sorted(parent.children(), key=lambda p: p.create_time())
        helper, *workers = children
        assert not door.is_bentoml_worker(helper.cmdline())
        found = door.bentoml_worker_processes(parent)
        assert [p.pid for p in found] == [w.pid for w in workers]
        workers[0].kill()
        # Killed: a zombie until its parent reaps it (never, here), and a zombie is no worker.
        while workers[0].is_running() and workers[0].status() != psutil.STATUS_ZOMBIE:
            time.sleep(0.01)
        assert [p.pid for p in door.bentoml_worker_processes(parent)] == [workers[1].pid]
    finally:
        for proc in parent.children():
            proc.kill()
        stand_in.kill()
        stand_in.wait()


# --------------------------------------------------------------------------- 7. bulk histogram


def test_observe_total_counts_exactly_like_one_observe_per_value() -> None:
    from prometheus_client import CollectorRegistry, Summary

    registry = CollectorRegistry()
    one_by_one = Summary("one_by_one_s", "", ["v"], registry=registry)
    in_bulk = Summary("in_bulk_s", "", ["v"], registry=registry)
    values = [0.5, 12.0, 30.25]
    for value in values:
        one_by_one.labels(v="x").observe(value)
    door.observe_total(in_bulk.labels(v="x"), len(values), sum(values))
    door.observe_total(in_bulk.labels(v="x"), 0, 0.0)  # nothing to observe: no change

    def samples(name: str) -> dict[str, float]:
        return {
            s.name.removeprefix(name): s.value
            for metric in registry.collect()
            if metric.name == name
            for s in metric.samples
            if not s.name.endswith("_created")
        }

    assert samples("in_bulk_s") == samples("one_by_one_s") == {"_count": 3, "_sum": 42.75}


def test_observe_many_counts_exactly_like_one_observe_per_value() -> None:
    from prometheus_client import CollectorRegistry, Histogram

    registry = CollectorRegistry()
    buckets = (1.0, 5.0, 10.0, 30.0, 60.0)
    one_by_one = Histogram("one_by_one", "", ["v"], buckets=buckets, registry=registry)
    in_bulk = Histogram("in_bulk", "", ["v"], buckets=buckets, registry=registry)
    # Values on bucket bounds, between them, below the first and above the last (+Inf).
    values = np.array([0.2, 1.0, 1.0001, 5.0, 7.5, 10.0, 29.9, 30.0, 59.0, 60.0, 61.0, 500.0])
    for value in values:
        one_by_one.labels(v="x").observe(value)
    door.observe_many(in_bulk.labels(v="x"), values)
    door.observe_many(in_bulk.labels(v="x"), np.array([]))  # nothing to observe: no change

    def samples(name: str) -> dict[tuple[str, str], float]:
        return {
            (s.name.removeprefix(name), s.labels.get("le", "")): s.value
            for metric in registry.collect()
            if metric.name == name
            for s in metric.samples
            if not s.name.endswith("_created")
        }

    assert samples("in_bulk") == samples("one_by_one")
    assert samples("in_bulk")[("_count", "")] == len(values)


# --------------------------------------------------------------------------- 8. uvicorn listeners


def test_uvicorn_startup_and_shutdown_have_the_shape_the_listener_hooks_wrap() -> None:
    for method in (uvicorn.Server.startup, uvicorn.Server.shutdown):
        assert list(inspect.signature(method).parameters) == ["self", "sockets"]
    startup = inspect.getsource(uvicorn.Server.startup)
    # The protocol factory the door rebuilds, and the flag it checks before calling `listening`.
    for fragment in (
        "config.http_protocol_class(",
        "server_state=self.server_state",
        "app_state=self.lifespan.state",
        "self.started = True",
    ):
        assert fragment in startup, fragment
    # `closing` runs before shutdown's first step, which stops accepting.
    shutdown = inspect.getsource(uvicorn.Server.shutdown)
    assert shutdown.index("server.close()") < shutdown.index("connection.shutdown()")


def test_listener_hooks_and_protocol_factory_on_a_real_uvicorn(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.harness.uvicorn_thread import listener, uvicorn_in_thread

    # The hooks patch the class for the process: let monkeypatch put the originals back.
    monkeypatch.setattr(uvicorn.Server, "startup", uvicorn.Server.startup)
    monkeypatch.setattr(uvicorn.Server, "shutdown", uvicorn.Server.shutdown)
    monkeypatch.setattr(uvicorn_server, "_LISTENING_HOOKS", [])
    monkeypatch.setattr(uvicorn_server, "_CLOSING_HOOKS", [])
    events: list[tuple[str, bool]] = []

    def listening(server: uvicorn.Server) -> None:
        events.append(("listening", bool(door.listening_sockets(server))))

    async def closing(server: uvicorn.Server) -> None:
        events.append(("closing", server.servers[0].is_serving()))

    door.install_listener_hooks(listening=listening, closing=closing)
    door.install_listener_hooks(listening=listening, closing=closing)  # same hooks: no-op

    def also_listening(server: uvicorn.Server) -> None:
        events.append(("also listening", True))

    door.install_listener_hooks(listening=also_listening)  # a second feature's hook
    main, elsewhere = listener(), listener()
    with uvicorn_in_thread(sockets=[main]) as running:
        # A connection accepted outside uvicorn, handed over with uvicorn's protocol ...
        client = socket.create_connection(elsewhere.getsockname())
        conn, _ = elsewhere.accept()
        conn.setblocking(False)
        factory = door.connection_protocol_factory(running.server)
        running.call(lambda: running.loop.connect_accepted_socket(factory, conn))
        client.sendall(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
        response = b""
        while not response.endswith(b"hello"):
            response += client.recv(4096)
        assert response.startswith(b"HTTP/1.1 200")
        # ... is one of uvicorn's connections,
        assert len(running.server.server_state.connections) == 1
    # so its shutdown closed the idle keep-alive connection too.
    client.settimeout(5)
    assert client.recv(4096) == b""
    assert events == [("listening", True), ("also listening", True), ("closing", True)]
    for sock in (client, main, elsewhere):
        sock.close()


def test_uvicorn_loads_the_config_before_startup_and_reads_app_and_protocol_after_it() -> None:
    # `starting` hooks run first in startup: the config must be loaded by then, and the
    # lifespan and each connection must read the (possibly wrapped) app and protocol later.
    from uvicorn.lifespan import on
    from uvicorn.protocols.http import httptools_impl

    serve = inspect.getsource(uvicorn.Server._serve)
    assert serve.index("config.load()") < serve.index("await self.startup(")
    assert "app = self.config.loaded_app" in inspect.getsource(on.LifespanOn.main)
    assert "self.app = config.loaded_app" in inspect.getsource(
        httptools_impl.HttpToolsProtocol.__init__
    )
    startup = inspect.getsource(uvicorn.Server.startup)
    assert startup.index("await self.lifespan.startup()") < startup.index("create_protocol")


# --------------------------------------------------------------------------- 9. uvicorn edge


def test_httptools_protocol_has_the_callbacks_and_state_the_guarded_protocol_uses() -> None:
    from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

    for name in (
        "connection_made",
        "connection_lost",
        "data_received",
        "send_400_response",
        "on_message_begin",
        "on_url",
        "on_headers_complete",
        "on_body",
        "on_message_complete",
    ):
        assert callable(getattr(HttpToolsProtocol, name)), name
    init = inspect.getsource(HttpToolsProtocol.__init__)
    for attribute in (
        "self.transport",
        "self.flow",
        "self.cycle",
        "self.loop",
        "self.server_state",
    ):
        assert attribute in init, attribute
    # A callback's exception reaches send_400_response (how a refusal stops the parser).
    data_received = inspect.getsource(HttpToolsProtocol.data_received)
    assert "except httptools.HttpParserError:" in data_received
    assert "self.send_400_response(msg)" in data_received
    # The keep-alive decision is the cycle's, read when the response is written.
    assert "self.keep_alive = False" in inspect.getsource(httptools_impl_cycle_send())
    assert STATUS_LINE[431].startswith(b"HTTP/1.1 431")


def httptools_impl_cycle_send():  # type: ignore[no-untyped-def]
    from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

    return RequestResponseCycle.send


def test_guard_connections_refuses_a_protocol_other_than_httptools() -> None:
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class FakeServer:
        config = type("Config", (), {"http_protocol_class": H11Protocol})()

    with pytest.raises(door.FrameworkDriftError, match="httptools"):
        door.guard_connections(FakeServer(), lambda control: None)


def test_the_edge_on_a_real_uvicorn(monkeypatch: pytest.MonkeyPatch) -> None:
    from serving.server.edge.connection import EdgeLimits, guard_factory
    from tests.harness.uvicorn_thread import get, listener, uvicorn_in_thread

    monkeypatch.setattr(uvicorn.Server, "startup", uvicorn.Server.startup)
    monkeypatch.setattr(uvicorn.Server, "shutdown", uvicorn.Server.shutdown)
    for hooks in ("_STARTING_HOOKS", "_LISTENING_HOOKS", "_CLOSING_HOOKS"):
        monkeypatch.setattr(uvicorn_server, hooks, [])
    refused: list[str] = []
    seen_paths: list[str] = []
    limits = EdgeLimits(
        max_request_target_bytes=100,
        max_header_bytes=1000,
        header_timeout_s=0.5,
        body_timeout_s=0.5,
        max_requests_per_connection=2,
    )

    def wrap(app):  # type: ignore[no-untyped-def]
        async def recording(scope, receive, send):  # type: ignore[no-untyped-def]
            if scope["type"] == "http":
                seen_paths.append(scope["path"])
                while scope["method"] == "POST" and (await receive()).get("more_body"):
                    pass  # read the body first, as the service's body guard does
            await app(scope, receive, send)

        return recording

    def starting(server: uvicorn.Server) -> None:
        door.wrap_served_app(server, wrap)
        door.guard_connections(server, guard_factory(limits, refused.append))

    door.install_listener_hooks(starting=starting)
    main, elsewhere = listener(), listener()
    with uvicorn_in_thread(sockets=[main]) as running:
        port = main.getsockname()[1]

        def exchange(data: bytes, sock: socket.socket | None = None) -> bytes:
            sock = sock or socket.create_connection(("127.0.0.1", port), timeout=5)
            with sock:
                with contextlib.suppress(OSError):
                    sock.sendall(data)
                received = b""
                with contextlib.suppress(ConnectionResetError):
                    while chunk := sock.recv(65536):
                        received += chunk
                return received

        assert get(port, "/a").startswith(b"HTTP/1.1 200")
        assert seen_paths == ["/a"]  # served through the wrapped app
        assert exchange(b"GET /" + b"x" * 200 + b" HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 414")
        big = b"GET / HTTP/1.1\r\nX: " + b"y" * 5000 + b"\r\n\r\n"
        assert exchange(big).startswith(b"HTTP/1.1 431")
        framing = b"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
        assert exchange(framing).startswith(b"HTTP/1.1 400")
        assert exchange(b"GET / HTTP/1.1\r\n").startswith(b"HTTP/1.1 408")  # header timeout
        stalled = b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nab"
        assert exchange(stalled).startswith(b"HTTP/1.1 408")  # body timeout
        two = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n" * 2
        answers = exchange(two)
        assert answers.count(b"HTTP/1.1 200") == 2 and b"connection: close" in answers
        # A connection accepted elsewhere and handed over gets the guarded protocol too.
        client = socket.create_connection(elsewhere.getsockname(), timeout=5)
        conn, _ = elsewhere.accept()
        conn.setblocking(False)
        factory = door.connection_protocol_factory(running.server)
        running.call(lambda: running.loop.connect_accepted_socket(factory, conn))
        assert exchange(b"GET /" + b"x" * 200 + b" HTTP/1.1\r\n\r\n", client).startswith(
            b"HTTP/1.1 414"
        )
    assert refused == [
        "request_target_too_long",
        "headers_too_large",
        "invalid_request",
        "header_timeout",
        "body_timeout",
        "request_target_too_long",
    ]
    for sock in (main, elsewhere):
        sock.close()


# --------------------------------------------------------------------------- 10. BentoML's routes


def test_bentoml_fixed_paths_are_every_route_bentoml_adds_to_a_service() -> None:
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    @bentoml.service
    class Tiny:
        @bentoml.api
        def echo(self, x: int) -> int:
            return x

    app = Tiny.to_asgi(is_main=True)
    routes = {route.path for route in app.router.routes if isinstance(route, Route)}
    assert routes - {"/echo"} == set(door.BENTOML_FIXED_ROUTES)
    (static,) = [r for r in app.router.routes if isinstance(r, Mount)]
    assert static.path == "/static_content" and isinstance(static.app, StaticFiles)
    files = {
        f"/static_content/{path.relative_to(static.app.directory).as_posix()}"  # type: ignore[arg-type]
        for path in Path(static.app.directory).rglob("*")  # type: ignore[arg-type]
        if path.is_file()
    }
    assert files and door.bentoml_fixed_paths() == set(door.BENTOML_FIXED_ROUTES) | files


def test_a_server_not_started_yet_has_no_listening_sockets() -> None:
    # A SIGTERM can reach a worker still loading the model, before uvicorn's startup sets
    # `servers`: its drain must find no socket rather than crash (and never exit).
    assert door.listening_sockets(uvicorn.Server(uvicorn.Config(app=None))) == []


# --------------------------------------------------------------------------- 11. Swagger UI files


def test_swagger_ui_assets_are_served_by_a_service_app() -> None:
    from starlette.testclient import TestClient

    @bentoml.service
    class Tiny:
        @bentoml.api
        def echo(self, x: int) -> int:
            return x

    prefix = door.swagger_ui_assets()
    with TestClient(Tiny.to_asgi(is_main=True)) as http:
        answers = {name: http.get(f"{prefix}{name}") for name in door.SWAGGER_UI_FILES}
    for name, answer in answers.items():
        assert answer.status_code == 200 and len(answer.content) > 10_000, name
    # The docs page calls SwaggerUIBundle with these options: the bundle must still read them.
    bundle = answers["swagger-ui-bundle.js"].text
    assert "SwaggerUIBundle" in bundle and "validatorUrl" in bundle and "BaseLayout" in bundle


def test_swagger_ui_assets_fail_loudly_when_bentoml_drops_a_file(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(bentoml_app, "SWAGGER_UI_FILES", ("no-such-swagger-file.js",))
    with pytest.raises(door.FrameworkDriftError, match=r"no-such-swagger-file\.js"):
        door.swagger_ui_assets()


# --------------------------------------------------------------------------- 13. request timers


def test_bentoml_timeout_middleware_has_the_shape_the_replacement_keeps() -> None:
    from bentoml._internal.server.http import traffic

    source = inspect.getsource(traffic)
    # BentoML's own: one timer per request, never cancelled (what the replacement fixes).
    assert "loop.call_later(self.timeout, self._set_timer_out, waiter)" in source
    assert "status_code=504" in source
    middleware = traffic.TimeoutMiddleware(app=None, timeout=30)
    assert (middleware.app, middleware.timeout) == (None, 30)
    assert callable(middleware._set_timer_out)


async def _call_timed(app, timeout: float) -> tuple[list[dict], list[asyncio.TimerHandle]]:  # type: ignore[no-untyped-def]
    from bentoml._internal.server.http.traffic import TimeoutMiddleware

    door.release_request_timers()
    loop = asyncio.get_running_loop()
    timers: list[asyncio.TimerHandle] = []
    call_later = loop.call_later

    def recording(*args, **kwargs):  # type: ignore[no-untyped-def]
        timers.append(call_later(*args, **kwargs))
        return timers[-1]

    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    async def receive() -> dict:
        return {"type": "http.request", "body": b""}

    loop.call_later = recording  # type: ignore[method-assign]
    try:
        await TimeoutMiddleware(app, timeout=timeout)({"type": "http"}, receive, send)
    finally:
        del loop.call_later  # type: ignore[method-assign]
    return sent, timers


async def test_release_request_timers_cancels_the_timer_once_the_response_starts() -> None:
    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    sent, timers = await _call_timed(app, timeout=30)
    assert [m.get("status", m.get("body")) for m in sent] == [200, b"ok"]
    assert len(timers) == 1 and timers[0].cancelled()


async def test_release_request_timers_still_answers_504_after_the_timeout() -> None:
    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        await asyncio.sleep(60)

    sent, _ = await _call_timed(app, timeout=0.05)
    assert sent[0]["status"] == 504
    assert b"Not able to process the request in 0.05 seconds" in sent[1]["body"]


# --------------------------------------------------------------------------- 16. latency at 0


def test_request_duration_series_have_bentomls_name_help_labels_and_codes() -> None:
    from bentoml._internal.server.http import instruments

    from framework_internals import request_metrics

    setup = inspect.getsource(instruments.RunnerTrafficMetricsMiddleware._setup)
    assert f'name="{request_metrics._NAME}"' in setup
    assert f'documentation="{request_metrics._DOCUMENTATION}"' in setup
    assert all(f'"{label}"' in setup for label in request_metrics._LABELS)
    assert "duration_buckets" in setup
    # The codes BentoML starts its request counter at, for every service route.
    assert all(f"http_response_code={code}" in setup for code in door.RESPONSE_CODES_AT_START)
    assert "server_context.service_routes" in setup
    # The service's middleware is this one, under the metrics config's namespace.
    app_source = inspect.getsource(__import__("_bentoml_impl.server.app", fromlist=["app"]))
    assert "RunnerTrafficMetricsMiddleware," in app_source
    assert "namespace=BentoMLContainer.api_server_config.metrics.namespace.get()" in app_source


def test_start_request_duration_series_starts_every_route_and_code_at_zero() -> None:
    from prometheus_client import CollectorRegistry, Histogram

    routes = ["/v1/predict", "/v1/feedback"]
    assert door.start_request_duration_series(routes) == 2 * len(door.RESPONSE_CODES_AT_START)
    # BentoML registers its own histogram under the same name afterwards: no clash.
    Histogram(
        "request_duration_seconds",
        "runner RPC duration in seconds",
        namespace="bentoml_service",
        registry=CollectorRegistry(),
    )
