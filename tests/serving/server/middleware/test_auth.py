"""Bearer-token auth: only the exact token opens a protected path, every failure looks the same."""

import httpx
import pytest
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from serving.server.middleware.auth import BearerTokenMiddleware

TOKEN = "s3cret-token-0123456789"


async def _ok(request: Request) -> PlainTextResponse:
    await request.body()
    return PlainTextResponse("ok")


def _client(tokens: dict[str, SecretStr | None]) -> httpx.AsyncClient:
    app = BearerTokenMiddleware(
        Starlette(routes=[Route(p, _ok, methods=["GET", "POST"]) for p in ("/a", "/b", "/open")]),
        tokens=tokens,
    )
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        f"Basic {TOKEN}",
        TOKEN,
        f"Bearer {TOKEN[:-1]}",
        f"Bearer {TOKEN}x",
        "Bearer other-token-0123456789",
    ],
)
async def test_anything_but_the_token_gets_the_same_401(authorization: str | None) -> None:
    headers = {} if authorization is None else {"authorization": authorization}
    async with _client({"/a": SecretStr(TOKEN)}) as client:
        response = await client.post("/a", content=b"{}", headers=headers)
    assert response.status_code == 401
    assert response.content == b'{"error": "unauthorized"}'
    assert response.headers["www-authenticate"] == 'Bearer realm="delivery-eta"'


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
async def test_the_token_opens_its_path_only(scheme: str) -> None:
    async with _client({"/a": SecretStr(TOKEN), "/b": SecretStr("another-token-0123456")}) as c:
        assert (await c.post("/a", headers={"authorization": f"{scheme} {TOKEN}"})).text == "ok"
        assert (await c.post("/b", headers={"authorization": f"Bearer {TOKEN}"})).status_code == 401
        assert (await c.get("/open")).text == "ok"


async def test_a_path_without_a_token_is_open() -> None:
    async with _client({"/a": None}) as client:
        assert (await client.post("/a")).text == "ok"
