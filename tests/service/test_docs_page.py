"""The docs page at ``/`` in a real headless browser (Debian's Chromium): it renders the project's
own title from ``/docs.json`` and asks nothing of any host but the server's.

Chromium runs with ``--dump-dom`` (the DOM once scripts have run, ``--virtual-time-budget``
letting Swagger UI fetch and render the document) and ``--log-net-log`` (every request the
network stack started, with the page it was made for). Every host name resolves to nothing but
127.0.0.1, so even a page that tried to call out would reach no one -- the net log still records
the attempt. The browser's own background requests (update checks, time, sign-in) are told apart
by their network isolation key: a page's requests carry the page's site.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import jsonschema

from serving.server.middleware.docs_page import TITLE
from tests.harness.local_server import LocalServer

PAGE_SITE = "http://127.0.0.1"
"""The site (scheme + host) of every page these tests load: the network isolation key of each
request a page makes starts with it."""


@dataclass(frozen=True)
class PageLoad:
    dom: str
    """The rendered DOM."""
    requested: list[str]
    """Every URL requested for the page, in order, the page itself first."""

    def foreign_hosts(self, own: str) -> set[str]:
        """Hosts (``host:port``) other than ``own`` that the page asked anything of."""
        return {urlsplit(url).netloc for url in self.requested} - {own}


def _chromium() -> str:
    binary = shutil.which("chromium")
    if binary is None:
        raise RuntimeError("chromium not installed: run `make system-deps`")
    return binary


def load_page(url: str, workdir: Path) -> PageLoad:
    """Load ``url`` in headless Chromium; its rendered DOM and every URL requested for it."""
    net_log = workdir / "net-log.json"
    command = [
        _chromium(),
        "--headless",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        # Autofill asks a Google server about forms on the page, under the page's own key.
        "--disable-features=AutofillServerCommunication",
        f"--user-data-dir={workdir / 'profile'}",
        # No name resolves: nothing can leave the host, whatever the page asks for.
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        f"--log-net-log={net_log}",
        "--virtual-time-budget=10000",
        "--dump-dom",
        url,
    ]
    if os.geteuid() == 0:
        command.insert(1, "--no-sandbox")  # Chromium refuses to run its sandbox as root
    done = subprocess.run(command, capture_output=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    return PageLoad(dom=done.stdout.decode(), requested=page_requests(net_log))


def page_requests(net_log: Path) -> list[str]:
    """URLs of the requests a net-log file records for pages of ``PAGE_SITE``."""
    log = json.loads(net_log.read_text())
    start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    urls = []
    for event in log["events"]:
        params = event.get("params") or {}
        if event["type"] == start_job and "url" in params:
            top_frame_site = str(params.get("network_isolation_key", "")).split(" ")[0]
            if top_frame_site == PAGE_SITE:
                urls.append(params["url"])
    return urls


# Elements that make the browser load something (an <a href> does not).
_LOADING_ATTRIBUTE = re.compile(
    r"<(?:script|img|iframe|link|source|video|audio|embed|object)\b[^>]*?\s"
    r"(?:src|href|data)=\"(https?:)?//([^/\"]+)",
    re.IGNORECASE,
)


def loaded_hosts(html: str) -> set[str]:
    """Hosts that elements of ``html`` load from by absolute URL."""
    return {match.group(2) for match in _LOADING_ATTRIBUTE.finditer(html)}


def test_docs_page_renders_the_project_title_with_nothing_from_outside(
    server: LocalServer, tmp_path: Path
) -> None:
    own = urlsplit(server.url).netloc
    load = load_page(f"{server.url}/", tmp_path)

    # Nothing went anywhere but the server.
    assert load.foreign_hosts(own) == set(), load.requested
    assert loaded_hosts(load.dom) <= {own}
    # Swagger UI ran: it fetched /docs.json and rendered its title and version.
    assert re.search(rf'<h2 class="title">{re.escape(TITLE)}\b', load.dom), load.dom[:2000]
    version = httpx.get(f"{server.url}/docs.json").json()["info"]["version"]
    assert version.startswith("1 (model delivery_eta:") and "None" not in version
    assert version in load.dom
    assert "BentoML" not in load.dom and "googletagmanager" not in load.dom
    # Everything the page needed came from the server.
    assert f"{server.url}/docs.json" in load.requested
    assert any(path.endswith("swagger-ui-bundle.js") for path in load.requested)


class _Page(http.server.BaseHTTPRequestHandler):
    body = b""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/html")
        self.send_header("content-length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def _serving(body: bytes) -> Iterator[str]:
    handler = type("Page", (_Page,), {"body": body})
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as httpd:
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{httpd.server_address[1]}"
        finally:
            httpd.shutdown()


def test_the_check_sees_a_page_that_calls_out(tmp_path: Path) -> None:
    # BentoML's own page, in short: a tag-manager script and badge images from other hosts.
    page = (
        b"<!DOCTYPE html><html><head><title>x</title>"
        b'<script async src="https://www.googletagmanager.com/gtm.js?id=GTM-X"></script>'
        b'</head><body><img src="https://img.shields.io/badge/BentoML-1.4-informational">'
        b"</body></html>"
    )
    with _serving(page) as url:
        load = load_page(f"{url}/", tmp_path)
    assert load.foreign_hosts(urlsplit(url).netloc) == {
        "www.googletagmanager.com",
        "img.shields.io",
    }
    assert loaded_hosts(load.dom) == {"www.googletagmanager.com", "img.shields.io"}


def test_page_is_the_services_and_forbids_other_origins(server: LocalServer) -> None:
    answer = httpx.get(f"{server.url}/")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/html")
    assert f"<title>{TITLE}</title>" in answer.text
    policy = answer.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "connect-src 'self'" in policy
    assert loaded_hosts(answer.text) == set()
    assert httpx.head(f"{server.url}/").status_code == 200


def _as_json_schema(node: object) -> object:
    """An OpenAPI 3.0 schema in JSON Schema form (``nullable: true`` -> a ``null`` type)."""
    if isinstance(node, list):
        return [_as_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {k: _as_json_schema(v) for k, v in node.items() if k != "nullable"}
    if node.get("nullable") and "type" in node:
        converted["type"] = [node["type"], "null"]
    return converted


def test_health_and_contract_are_documented_as_they_answer(server: LocalServer) -> None:
    document = httpx.get(f"{server.url}/docs.json").json()
    health = document["components"]["schemas"]["Health"]
    answer = httpx.get(f"{server.url}/health").json()
    jsonschema.validate(answer, _as_json_schema(health))
    assert set(answer) == set(health["properties"])
    contract = document["paths"]["/contract"]["get"]["responses"]["200"]["content"]
    assert contract["application/json"]["schema"] == {"type": "object"}
    assert isinstance(httpx.get(f"{server.url}/contract").json(), dict)
