"""The docs page's middleware (serving/server/middleware/docs_page.py), without a server."""

from __future__ import annotations

import base64
import hashlib
import re

import httpx
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from serving.server.middleware.docs_page import (
    DocsPageMiddleware,
    content_security_policy,
    docs_page,
)


def _client() -> httpx.AsyncClient:
    async def other(_: object) -> PlainTextResponse:
        return PlainTextResponse("other")

    app = DocsPageMiddleware(
        Starlette(routes=[Route("/", other, methods=["GET", "POST"]), Route("/x", other)]),
        info=lambda: {"title": "t<script>", "version": "1 (model m:v, build dev)"},
        assets="/static_content/",
    )
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def test_get_and_head_answer_the_page_and_other_requests_pass() -> None:
    async with _client() as http:
        page, head = await http.get("/"), await http.head("/")
        posted, other = await http.post("/"), await http.get("/x")
    assert page.status_code == 200 and "<title>t&lt;script&gt;</title>" in page.text
    assert "1 (model m:v, build dev)" in page.text
    assert './static_content/swagger-ui-bundle.js"' in page.text
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(page.content))
    assert posted.text == "other" and other.text == "other"


def test_the_policy_allows_exactly_the_pages_inline_script() -> None:
    page = docs_page("t", "1", "/static_content/")
    (inline,) = re.findall(r"<script>(.*?)</script>", page.decode(), re.DOTALL)
    digest = base64.b64encode(hashlib.sha256(inline.encode()).digest()).decode()
    policy = content_security_policy(page)
    assert f"script-src 'self' 'sha256-{digest}'" in policy
    assert "default-src 'self'" in policy and "'unsafe-inline'" not in policy.split("; ")[1]
    assert "validatorUrl: null" in inline  # no badge image from validator.swagger.io
