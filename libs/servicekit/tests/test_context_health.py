"""Request ids, the access log, /healthz, /readyz and /metrics."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import CONTENT_TYPE_LATEST

from eventkit.logs import correlation_id
from servicekit import create_app
from servicekit.health import postgres_check

pytestmark = pytest.mark.unit


async def ok() -> None:
    return None


async def down() -> None:
    raise ConnectionError("refused by 10.0.0.1")


async def slow() -> None:
    await asyncio.sleep(5)


def build_app(
    checks: dict[str, Any] | None = None, advisory: dict[str, Any] | None = None
) -> FastAPI:
    app = create_app(
        "test",
        version="0",
        health_checks=checks or {},
        advisory_checks=advisory,
        readiness_timeout=0.05,
    )

    @app.get("/candidates/{candidate_id}")
    async def candidate(candidate_id: str) -> dict[str, str | None]:
        return {"correlation_id": correlation_id.get()}

    return app


async def client_for(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with await client_for(build_app()) as c:
        yield c


async def test_a_sane_incoming_request_id_is_kept_echoed_and_used_as_correlation_id(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/candidates/7", headers={"X-Request-ID": "abc-123"})
    assert response.headers["x-request-id"] == "abc-123"
    assert response.json() == {"correlation_id": "abc-123"}
    assert correlation_id.get() is None


@pytest.mark.parametrize(
    "incoming", [None, "", "x" * 65, "has space", "semi;colon", "中文".encode(), "a_b"]
)
async def test_missing_or_insane_request_ids_are_replaced_by_a_uuid4(
    client: httpx.AsyncClient, incoming: str | bytes | None
) -> None:
    headers: dict[str, Any] = {} if incoming is None else {"X-Request-ID": incoming}
    response = await client.get("/candidates/7", headers=headers)
    generated = response.headers["x-request-id"]
    assert uuid.UUID(generated).version == 4
    assert response.json() == {"correlation_id": generated}


async def test_the_access_log_has_the_route_template_and_no_query_or_raw_path(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="servicekit.access"):
        await client.get("/candidates/11010519491231002X?mobile=13812345678")
    records = [r for r in caplog.records if r.name == "servicekit.access"]
    assert len(records) == 1
    record = records[0]
    assert record.__dict__["method"] == "GET"
    assert record.__dict__["path"] == "/candidates/{candidate_id}"
    assert record.__dict__["status"] == 200
    assert isinstance(record.__dict__["duration_ms"], float)
    text = record.getMessage() + repr(record.__dict__)
    assert "11010519491231002X" not in text
    assert "13812345678" not in text


async def test_unmatched_paths_are_logged_without_the_raw_path(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="servicekit.access"):
        response = await client.get("/secret/11010519491231002X")
    assert response.status_code == 404
    record = next(r for r in caplog.records if r.name == "servicekit.access")
    assert record.__dict__["path"] == "<unmatched>"


async def test_healthz_is_200_whatever_the_checks_say() -> None:
    async with await client_for(build_app({"db": down})) as c:
        response = await c.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_is_200_when_every_check_passes() -> None:
    async with await client_for(build_app({"db": ok, "kafka": ok})) as c:
        response = await c.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "checks": {"db": "ok", "kafka": "ok"},
        "failures": [],
        "degraded": [],
    }


async def test_readyz_is_503_listing_failed_and_timed_out_checks() -> None:
    async with await client_for(build_app({"db": ok, "kafka": down, "s3": slow})) as c:
        response = await c.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"] == {"db": "ok", "kafka": "failed", "s3": "timeout"}
    assert sorted(body["failures"]) == ["kafka", "s3"]
    assert "10.0.0.1" not in response.text


async def test_postgres_check_runs_select_1() -> None:
    class Pool:
        queries: list[str] = []  # noqa: RUF012

        async def fetchval(self, query: str) -> int:
            self.queries.append(query)
            return 1

    pool = Pool()
    await postgres_check(pool)()  # type: ignore[arg-type]
    assert pool.queries == ["SELECT 1"]


async def test_metrics_expose_latency_by_route_template(client: httpx.AsyncClient) -> None:
    await client.get("/candidates/42")
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == CONTENT_TYPE_LATEST
    assert "http_request_duration_seconds_bucket" in response.text
    assert 'route="/candidates/{candidate_id}"' in response.text
    assert 'status="200"' in response.text
    assert "/candidates/42" not in response.text


async def test_openapi_stays_on(client: httpx.AsyncClient) -> None:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    assert "/candidates/{candidate_id}" in response.json()["paths"]


def _request(peer: str, forwarded: str | None = None) -> Any:
    from starlette.requests import Request

    headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded is not None else []
    return Request({"type": "http", "client": (peer, 1234), "headers": headers})


@pytest.mark.unit
def test_client_address_believes_only_trusted_proxies() -> None:
    from servicekit.context import client_address, parse_networks

    proxies = parse_networks("127.0.0.1, 10.0.0.0/8")
    # a direct client: its own address, whatever it claims
    assert client_address(_request("203.0.113.9", "198.51.100.1"), proxies) == "203.0.113.9"
    # behind our UI: the address the UI forwarded
    assert client_address(_request("127.0.0.1", "198.51.100.7"), proxies) == "198.51.100.7"
    # a forged left-most entry is skipped: the right-most untrusted hop counts
    assert client_address(_request("10.1.2.3", "1.1.1.1, 198.51.100.7, 10.9.9.9"), proxies) == (
        "198.51.100.7"
    )
    # a trusted peer that forwards nothing, or garbage: the peer itself
    assert client_address(_request("127.0.0.1"), proxies) == "127.0.0.1"
    assert client_address(_request("127.0.0.1", "not-an-ip"), proxies) == "127.0.0.1"
    assert client_address(_request("127.0.0.1", "198.51.100.7"), ()) == "127.0.0.1"
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6 network"):
        parse_networks("10.0.0.0/33")


async def test_a_failing_advisory_check_degrades_readiness_without_taking_the_pod_out() -> None:
    async with await client_for(build_app({"postgres": ok}, {"kafka": down})) as c:
        response = await c.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "degraded",
        "checks": {"postgres": "ok", "kafka": "failed"},
        "failures": [],
        "degraded": ["kafka"],
    }
    async with await client_for(build_app({"postgres": down}, {"kafka": slow})) as c:
        response = await c.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert (body["failures"], body["degraded"]) == (["postgres"], ["kafka"])


@pytest.mark.parametrize(
    "header",
    [("X-Forwarded-For", "203.0.113.9"), ("X-Real-IP", "203.0.113.9"), ("Forwarded", "for=x")],
)
async def test_metrics_and_readiness_refuse_requests_that_came_through_a_proxy(
    header: tuple[str, str],
) -> None:
    async with await client_for(build_app({"db": ok})) as c:
        for path in ("/metrics", "/readyz"):
            assert (await c.get(path)).status_code == 200, path
            proxied = await c.get(path, headers=dict([header]))
            assert proxied.status_code == 404, path
            assert proxied.json()["error"]["code"] == "request.not_found"
            assert "http_request" not in proxied.text
        # the liveness answer and the API itself are the internet's
        assert (await c.get("/healthz", headers=dict([header]))).status_code == 200
        assert (await c.get("/candidates/1", headers=dict([header]))).status_code == 200


async def test_checks_with_a_client_are_closed_at_shutdown() -> None:
    class Closable:
        closed = False

        async def __call__(self) -> None:
            return None

        async def close(self) -> None:
            self.closed = True

    gating, advisory = Closable(), Closable()
    started: list[str] = []

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        started.append("up")
        yield
        started.append("down")

    app = create_app(
        "test",
        version="0",
        health_checks={"db": gating},
        advisory_checks={"kafka": advisory},
        lifespan=lifespan,
    )
    async with app.router.lifespan_context(app):
        assert started == ["up"] and not gating.closed
    assert started == ["up", "down"] and gating.closed and advisory.closed
