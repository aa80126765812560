"""The scrape cache: one render per max age, shared by concurrent scrapes, failures not kept."""

import asyncio

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from serving.server.middleware.scrape_cache import ScrapeCacheMiddleware


def _client(max_age_s: float, status: int = 200) -> tuple[httpx.AsyncClient, list[int]]:
    renders: list[int] = []

    async def metrics(_: Request) -> PlainTextResponse:
        renders.append(1)
        await asyncio.sleep(0.05)  # long enough for concurrent scrapes to overlap
        return PlainTextResponse(f"render {len(renders)}", status_code=status)

    async def other(_: Request) -> PlainTextResponse:
        return PlainTextResponse("other")

    app = ScrapeCacheMiddleware(
        Starlette(routes=[Route("/metrics", metrics), Route("/other", other)]), max_age_s
    )
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")
    return client, renders


async def test_scrapes_within_the_max_age_share_one_render() -> None:
    client, renders = _client(max_age_s=60)
    async with client:
        answers = await asyncio.gather(*(client.get("/metrics") for _ in range(8)))
        again = await client.get("/metrics")
    assert {a.text for a in answers} == {"render 1"} and again.text == "render 1"
    assert renders == [1]
    assert again.headers["content-type"].startswith("text/plain")


async def test_an_older_rendering_is_replaced() -> None:
    client, renders = _client(max_age_s=0.1)
    async with client:
        first = (await client.get("/metrics")).text
        await asyncio.sleep(0.15)
        second = (await client.get("/metrics")).text
    assert (first, second) == ("render 1", "render 2") and len(renders) == 2


async def test_max_age_zero_and_other_paths_pass_through() -> None:
    client, renders = _client(max_age_s=0)
    async with client:
        texts = [(await client.get("/metrics")).text for _ in range(2)]
        assert (await client.get("/other")).text == "other"
    assert texts == ["render 1", "render 2"] and len(renders) == 2


async def test_failed_renders_are_not_kept() -> None:
    client, renders = _client(max_age_s=60, status=500)
    async with client:
        statuses = [(await client.get("/metrics")).status_code for _ in range(2)]
    assert statuses == [500, 500] and len(renders) == 2


async def test_head_is_answered_from_the_cache_too() -> None:
    # Starlette renders everything for HEAD as for GET: uncached, HEAD floods would cost as much.
    client, renders = _client(max_age_s=60)
    async with client:
        heads = await asyncio.gather(*(client.head("/metrics") for _ in range(8)))
        get = await client.get("/metrics")
    assert renders == [1]
    assert all(h.status_code == 200 and h.content == b"" for h in heads)
    assert get.text == "render 1"


async def test_scrapes_sharing_a_cancelled_render_render_again() -> None:
    # The scrape that started the shared render goes away (its client disconnected): the
    # scrapes waiting on it must still be answered, not cancelled with it.
    client, renders = _client(max_age_s=60)
    async with client:
        first = asyncio.ensure_future(client.get("/metrics"))
        await asyncio.sleep(0.01)  # first is rendering
        waiting = [asyncio.ensure_future(client.get("/metrics")) for _ in range(3)]
        await asyncio.sleep(0.01)
        first.cancel()
        answers = await asyncio.gather(*waiting)
    assert all(a.status_code == 200 for a in answers)
    assert len(renders) == 2
