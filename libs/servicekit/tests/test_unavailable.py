"""A dependency away for the moment is a 503 with Retry-After, never a 500: the mapping of the
shared transient rule (unit), and a real asyncpg pool behind a TCP forwarder cut from the real
PostgreSQL, on an app that recovers by itself and that starts while the database is away."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint

from devstack import Endpoints
from servicekit import AppError, create_app
from servicekit.app import Startup
from servicekit.db import service_pool
from servicekit.errors import ErrorBody, ErrorView, set_error_page
from servicekit.testing import TcpForwarder, serve_in_process

UNAVAILABLE = "服务暂时不可用，请稍后重试"


def html_pages(app: FastAPI) -> None:
    """Pages outside /api/ render errors as HTML, as the two web UIs do."""

    async def page(request: Request, view: ErrorView) -> Response | None:
        if request.url.path.startswith("/api/"):
            return None
        return HTMLResponse(f"<h1>{view.message}</h1><p>{view.code}</p>", status_code=view.status)

    set_error_page(app, page)


def assert_unavailable(
    response: httpx.Response, *, html: bool = False, request_id: bool = True
) -> None:
    assert response.status_code == 503, response.text
    retry_after = response.headers["retry-after"]
    assert retry_after.isascii() and retry_after.isdigit() and int(retry_after) > 0
    if html:
        assert response.headers["content-type"].startswith("text/html")
        assert UNAVAILABLE in response.text
        return
    body = ErrorBody.model_validate(response.json())
    assert body.error.code == "service.unavailable"
    assert body.error.message == UNAVAILABLE
    if request_id:
        assert body.error.request_id == response.headers["x-request-id"]


# --- the mapping (unit) ---------------------------------------------------------------------


def raising(exc: Callable[[], BaseException]) -> FastAPI:
    app = create_app("test", version="0")
    html_pages(app)

    @app.get("/api/boom")
    async def api_boom() -> None:
        raise exc()

    @app.get("/page")
    async def page_boom() -> None:
        raise exc()

    return app


async def get(app: FastAPI, path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.get(path)


TRANSIENT: dict[str, Callable[[], BaseException]] = {
    "cannot connect now": lambda: asyncpg.CannotConnectNowError(
        "the database system is starting up"
    ),
    "admin shutdown": lambda: asyncpg.AdminShutdownError("terminating connection"),
    "connection does not exist": lambda: asyncpg.ConnectionDoesNotExistError(
        "connection was closed in the middle of operation"
    ),
    "pool closed connection": lambda: asyncpg.InterfaceError("connection is closed"),
    "acquire timeout": lambda: TimeoutError(),
    "connection refused": lambda: ConnectionRefusedError(111, "Connect call failed"),
    "serialization failure": lambda: asyncpg.SerializationError("could not serialize"),
    "a group of them": lambda: ExceptionGroup(
        "tasks", [ConnectionResetError(104, "reset"), TimeoutError()]
    ),
}


@pytest.mark.unit
@pytest.mark.parametrize("name", sorted(TRANSIENT))
async def test_a_transient_failure_is_a_503_with_retry_after_json_and_html(name: str) -> None:
    app = raising(TRANSIENT[name])
    assert_unavailable(await get(app, "/api/boom"))
    assert_unavailable(await get(app, "/page"), html=True)


@pytest.mark.unit
@pytest.mark.parametrize(
    "exc",
    [
        lambda: asyncpg.UniqueViolationError("duplicate key value"),
        lambda: asyncpg.InterfaceError("the server expects 2 arguments, 1 was passed"),
        lambda: KeyError("bug"),
        lambda: ExceptionGroup("tasks", [TimeoutError(), KeyError("bug")]),
    ],
)
async def test_a_bug_or_a_constraint_stays_a_500(exc: Callable[[], BaseException]) -> None:
    response = await get(raising(exc), "/api/boom")
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "internal"
    assert "retry-after" not in response.headers


@pytest.mark.unit
async def test_one_known_error_in_a_group_is_answered_as_itself() -> None:
    app = raising(
        lambda: ExceptionGroup("tasks", [AppError("test.taken", "已被占用", "taken", status=409)])
    )
    response = await get(app, "/api/boom")
    assert (response.status_code, response.json()["error"]["code"]) == (409, "test.taken")


@pytest.mark.unit
async def test_every_503_carries_a_retry_after() -> None:
    app = raising(lambda: AppError("test.away", "稍后再试", "away", status=503))
    response = await get(app, "/api/boom")
    assert response.status_code == 503 and response.headers["retry-after"].isdigit()


@pytest.mark.unit
async def test_a_transient_failure_inside_a_base_http_middleware_is_a_503() -> None:
    async def failing(request: Request, call_next: RequestResponseEndpoint) -> Response:
        if request.url.path == "/api/mw":
            raise asyncpg.CannotConnectNowError("the database system is shutting down")
        return await call_next(request)

    app = create_app("test", version="0")

    @app.get("/api/mw")
    async def mw() -> None:
        return None

    @app.get("/api/tg")
    async def task_group() -> None:
        async def down() -> None:
            raise ConnectionResetError(104, "reset by peer")

        async with asyncio.TaskGroup() as group:
            group.create_task(down())

    app.add_middleware(BaseHTTPMiddleware, dispatch=failing)  # outside the request context
    assert_unavailable(await get(app, "/api/mw"), request_id=False)
    assert_unavailable(await get(app, "/api/tg"))


@pytest.mark.unit
async def test_a_startup_waiting_for_its_database_answers_503_and_readyz_not_ready() -> None:
    attempts: list[int] = []
    release = asyncio.Event()

    class Svc:
        async def close(self) -> None:
            return None

    async def start() -> Svc:
        attempts.append(1)
        if not release.is_set():
            raise ConnectionRefusedError(111, "Connect call failed")
        return Svc()

    app = create_app("test", version="0")
    html_pages(app)

    @app.get("/api/x")
    async def x(request: Request) -> dict[str, bool]:
        return {"ok": request.app.state.svc is not None}

    def on_started(svc: Svc) -> None:
        app.state.svc = svc

    async with Startup(app, "test", start, on_started, base_delay=0.01, max_delay=0.05) as up:
        assert not up.started
        assert_unavailable(await get(app, "/api/x"))
        assert_unavailable(await get(app, "/login"), html=True)
        assert (await get(app, "/healthz")).status_code == 200
        ready = await get(app, "/readyz")
        assert ready.status_code == 503 and ready.json()["failures"] == ["startup"]
        release.set()
        for _ in range(200):
            if up.started:
                break
            await asyncio.sleep(0.01)
        assert up.started and len(attempts) >= 2
        assert (await get(app, "/api/x")).json() == {"ok": True}


@pytest.mark.unit
async def test_a_startup_failing_for_a_reason_that_is_not_the_moment_raises() -> None:
    async def start() -> Any:
        raise asyncpg.InvalidPasswordError("password authentication failed")

    app = create_app("test", version="0")
    with pytest.raises(asyncpg.InvalidPasswordError):
        async with Startup(app, "test", start, lambda _: None):
            pass


# --- a real pool behind a forwarder (integration) ---------------------------------------------


def pool_app(dsn: str) -> FastAPI:
    """An app on a pool made by a `Startup` (as the services' lifespans do)."""

    class Wired:
        def __init__(self, pool: asyncpg.Pool) -> None:
            self.pool = pool

        async def close(self) -> None:
            await self.pool.close()

    async def start() -> Wired:
        pool = await service_pool(dsn, min_size=1, max_size=4, connect_timeout=1, acquire_timeout=2)
        await pool.fetchval("SELECT 1")  # what a migration does at startup
        return Wired(pool)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        def attach(wired: Wired) -> None:
            app.state.wired = wired

        startup = Startup(app, "test", start, attach, base_delay=0.1, max_delay=0.5)
        try:
            async with startup:
                yield
        finally:
            if startup.service is not None:
                await startup.service.close()

    async def database_ready() -> None:
        await app.state.wired.pool.fetchval("SELECT 1")

    app = create_app(
        "test", version="0", health_checks={"postgres": database_ready}, lifespan=lifespan
    )
    html_pages(app)

    @app.get("/api/answer")
    async def answer(request: Request) -> dict[str, int]:
        return {"answer": await request.app.state.wired.pool.fetchval("SELECT 42")}

    @app.get("/page")
    async def page(request: Request) -> HTMLResponse:
        value = await request.app.state.wired.pool.fetchval("SELECT 42")
        return HTMLResponse(f"<p>{value}</p>")

    return app


@pytest.fixture
async def link(stack: Endpoints) -> AsyncIterator[TcpForwarder]:
    async with TcpForwarder(stack.pg_host, stack.pg_port) as forwarder:
        yield forwarder


def through(dsn: str, stack: Endpoints, link: TcpForwarder) -> str:
    return dsn.replace(f"{stack.pg_host}:{stack.pg_port}/", f"127.0.0.1:{link.port}/")


async def until_ok(client: httpx.AsyncClient, path: str, timeout: float = 15.0) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        response = await client.get(path)
        assert response.status_code in (200, 503), response.text  # never a 500
        if response.status_code == 200 or time.monotonic() > deadline:
            return response
        await asyncio.sleep(0.2)


@pytest.mark.integration
async def test_postgres_cut_is_503_and_the_app_recovers_by_itself(
    database: str, stack: Endpoints, link: TcpForwarder
) -> None:
    app = pool_app(through(database, stack, link))
    async with (
        serve_in_process(app, lifespan="on") as url,
        httpx.AsyncClient(base_url=url, timeout=10) as client,
    ):
        assert (await client.get("/api/answer")).json() == {"answer": 42}
        assert link.connections >= 1

        link.cut()  # the database restarted: every open connection is gone, new ones work
        for _ in range(3):
            response = await client.get("/api/answer")
            assert response.status_code in (200, 503), response.text
        assert (await until_ok(client, "/api/answer")).json() == {"answer": 42}

        link.refuse()  # the database is down
        started = time.monotonic()
        for _ in range(5):
            assert_unavailable(await client.get("/api/answer"))
        assert_unavailable(await client.get("/page"), html=True)
        assert time.monotonic() - started < 10  # fails fast, no hanging requests
        assert (await client.get("/readyz")).status_code == 503
        assert (await client.get("/healthz")).status_code == 200

        link.restore()  # back, and nothing restarted
        assert (await until_ok(client, "/api/answer")).json() == {"answer": 42}
        assert (await until_ok(client, "/page")).text == "<p>42</p>"
        assert (await until_ok(client, "/readyz")).status_code == 200


@pytest.mark.integration
async def test_an_app_started_while_postgres_is_away_starts_answers_503_then_serves(
    database: str, stack: Endpoints, link: TcpForwarder
) -> None:
    link.refuse()
    app = pool_app(through(database, stack, link))
    async with (
        serve_in_process(app, lifespan="on") as url,
        httpx.AsyncClient(base_url=url, timeout=10) as client,
    ):
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get("/readyz")).status_code == 503
        assert_unavailable(await client.get("/api/answer"))
        assert_unavailable(await client.get("/page"), html=True)

        link.restore()
        assert (await until_ok(client, "/api/answer")).json() == {"answer": 42}
        assert (await until_ok(client, "/readyz")).status_code == 200
