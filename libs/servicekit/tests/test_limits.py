"""Body size limits: by Content-Length before reading, and by counting streamed (chunked) bytes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI, Request
from starlette.types import Message

from servicekit import create_app
from servicekit.limits import BodySizeLimit

pytestmark = pytest.mark.unit

LIMIT = 1000
UPLOAD_LIMIT = 3000


def build_app(calls: list[str]) -> FastAPI:
    app = create_app(
        "test", version="0", max_body_bytes=LIMIT, body_limits={"/media/uploads": UPLOAD_LIMIT}
    )

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, int]:
        calls.append("echo")
        return {"size": len(await request.body())}

    @app.post("/media/uploads")
    async def upload(request: Request) -> dict[str, int]:
        calls.append("upload")
        return {"size": len(await request.body())}

    return app


@pytest.fixture
def calls() -> list[str]:
    return []


@pytest.fixture
async def client(calls: list[str]) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=build_app(calls))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


async def test_content_length_over_the_limit_is_413_before_the_app_runs(
    client: httpx.AsyncClient, calls: list[str]
) -> None:
    response = await client.post("/echo", content=b"x" * (LIMIT + 1))
    assert response.status_code == 413
    error = response.json()["error"]
    assert error["code"] == "request.too_large"
    assert error["request_id"] == response.headers["x-request-id"]
    assert calls == []


async def test_a_body_at_the_limit_passes(client: httpx.AsyncClient) -> None:
    response = await client.post("/echo", content=b"x" * LIMIT)
    assert response.status_code == 200
    assert response.json() == {"size": LIMIT}


async def test_chunked_body_over_the_limit_is_413_and_read_no_further(
    client: httpx.AsyncClient,
) -> None:
    pulled: list[int] = []

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(50):
            pulled.append(i)
            yield b"y" * 300

    response = await client.post("/echo", content=chunks())
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request.too_large"
    # 4 x 300 bytes pass the limit of 1000; nothing after the fourth chunk is pulled.
    assert len(pulled) == 4


async def test_path_prefix_override_allows_a_larger_upload(client: httpx.AsyncClient) -> None:
    response = await client.post("/media/uploads", content=b"z" * 2500)
    assert response.status_code == 200
    response = await client.post("/media/uploads", content=b"z" * (UPLOAD_LIMIT + 1))
    assert response.status_code == 413
    response = await client.post("/echo", content=b"z" * 2500)
    assert response.status_code == 413


async def test_nonsense_content_length_is_400() -> None:
    sent: list[Message] = []

    async def app(scope: object, receive: object, send: object) -> None:
        raise AssertionError("the app must not run")

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    middleware = BodySizeLimit(app, max_bytes=LIMIT)
    scope = {"type": "http", "path": "/echo", "headers": [(b"content-length", b"12abc")]}
    await middleware(scope, receive, send)
    assert sent[0]["status"] == 400


async def test_raw_asgi_streaming_stops_pulling_at_the_limit() -> None:
    pulled = 0
    sent: list[Message] = []

    async def app(scope: object, receive: object, send: object) -> None:
        assert callable(receive)
        while True:
            message = await receive()
            if not message.get("more_body"):
                break

    async def receive() -> Message:
        nonlocal pulled
        pulled += 1
        return {"type": "http.request", "body": b"a" * 400, "more_body": True}

    async def send(message: Message) -> None:
        sent.append(message)

    middleware = BodySizeLimit(app, max_bytes=LIMIT)
    await middleware({"type": "http", "path": "/x", "headers": []}, receive, send)
    assert pulled == 3
    assert sent[0]["status"] == 413
    assert b"request.too_large" in sent[1]["body"]


def test_longest_prefix_wins() -> None:
    middleware = BodySizeLimit(
        lambda *a: None,  # type: ignore[arg-type]
        max_bytes=10,
        overrides={"/media": 20, "/media/uploads": 30},
    )
    assert middleware.limit_for("/media/uploads/x") == 30
    assert middleware.limit_for("/media/photos") == 20
    assert middleware.limit_for("/other") == 10


async def test_a_web_ui_page_gets_its_own_html_error_page_and_the_api_keeps_json(
    calls: list[str],
) -> None:
    from fastapi.responses import HTMLResponse

    from servicekit.errors import ErrorView, set_error_page

    app = build_app(calls)

    @app.post("/pages/form")
    async def form(request: Request) -> dict[str, int]:
        calls.append("form")
        return {"size": len(await request.body())}

    async def page(request: Request, view: ErrorView) -> HTMLResponse | None:
        if not request.url.path.startswith("/pages/"):
            return None
        body = f"<html><p>{view.message}</p><p>{view.code}</p></html>"
        return HTMLResponse(body, status_code=view.status)

    set_error_page(app, page)

    async def chunks(total: int) -> AsyncIterator[bytes]:
        for _ in range(total // 100):
            yield b"y" * 100

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        declared = await c.post("/pages/form", content=b"x" * (LIMIT + 1))
        streamed = await c.post("/pages/form", content=chunks(LIMIT + 500))
        api = await c.post("/echo", content=b"x" * (LIMIT + 1))
        malformed = await c.post(
            "/pages/form", content=b"x", headers={"Content-Length": "not-a-number"}
        )
    for refused in (declared, streamed):
        assert refused.status_code == 413
        assert refused.headers["content-type"].startswith("text/html")
        assert "提交的内容过大" in refused.text and "request.too_large" in refused.text
        assert refused.headers["x-request-id"]
    assert malformed.status_code == 400 and "request.malformed" in malformed.text
    assert api.status_code == 413 and api.json()["error"]["code"] == "request.too_large"
    assert calls == ["form"]  # only the streamed body reached the handler, stopped while read
