"""Liveness and readiness probes, with ready-made checks for PostgreSQL and Kafka."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal

import asyncpg
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from eventkit.kafka import KafkaConnection, kafka_connection, start_or_explain
from eventkit.logs import mask_personal_data
from eventkit.settings import PlatformSettings
from servicekit.metrics import direct_only, metrics_router

__all__ = [
    "Check",
    "KafkaCheck",
    "Readiness",
    "health_router",
    "kafka_check",
    "metrics_router",
    "platform_kafka_check",
    "postgres_check",
]

log = logging.getLogger("servicekit.health")

Check = Callable[[], Awaitable[None]]
CheckStatus = Literal["ok", "failed", "timeout"]


class Readiness(BaseModel):
    """The `/readyz` body: overall status, each check's status, the failing gating checks
    (`failures`: 503) and the failing advisory ones (`degraded`: still 200)."""

    status: Literal["ok", "degraded", "unavailable"]
    checks: dict[str, CheckStatus]
    failures: list[str]
    degraded: list[str] = []


async def _run(name: str, check: Check, timeout: float) -> CheckStatus:
    try:
        await asyncio.wait_for(check(), timeout)
    except TimeoutError:
        log.warning("readiness check timed out", extra={"check": name, "timeout_s": timeout})
        return "timeout"
    except Exception as exc:
        log.warning(
            "readiness check failed",
            extra={"check": name, "error": mask_personal_data(f"{type(exc).__name__}: {exc}")},
        )
        return "failed"
    return "ok"


def health_router(
    checks: Mapping[str, Check],
    *,
    advisory: Mapping[str, Check] | None = None,
    timeout: float = 2.0,
) -> APIRouter:
    """`GET /healthz` (200 while the loop runs); `GET /readyz` (each check, with a timeout).

    A failing check of `checks` makes /readyz 503 (the pod leaves the Service); a failing
    `advisory` one is reported (`degraded`) with a 200: an API whose writes go to its outbox keeps
    serving while Kafka is away, and taking every pod out would turn a Kafka outage into a site
    outage. While the service is still starting (`servicekit.app.Startup` waiting for its
    database) /readyz is 503 with the `startup` check failed. /readyz answers only direct
    requests (`direct_only`)."""
    router = APIRouter(tags=["health"])
    gating = dict(checks)
    named = {**gating, **{n: c for n, c in (advisory or {}).items() if n not in gating}}

    @router.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz", include_in_schema=False, dependencies=[Depends(direct_only)])
    async def readyz(request: Request) -> JSONResponse:
        if getattr(request.app.state, "service_starting", False):  # servicekit.app.Startup
            starting = Readiness(
                status="unavailable", checks={"startup": "failed"}, failures=["startup"]
            )
            return JSONResponse(starting.model_dump(), status_code=503)
        results = await asyncio.gather(*(_run(n, c, timeout) for n, c in named.items()))
        statuses = dict(zip(named, results, strict=True))
        failures = [n for n, s in statuses.items() if s != "ok" and n in gating]
        degraded = [n for n, s in statuses.items() if s != "ok" and n not in gating]
        body = Readiness(
            status="unavailable" if failures else "degraded" if degraded else "ok",
            checks=statuses,
            failures=failures,
            degraded=degraded,
        )
        return JSONResponse(body.model_dump(), status_code=503 if failures else 200)

    return router


def postgres_check(pool: asyncpg.Pool[Any]) -> Check:
    """A readiness check running `SELECT 1` on the pool."""

    async def check() -> None:
        if await pool.fetchval("SELECT 1") != 1:
            raise RuntimeError("SELECT 1 returned something else")

    return check


class KafkaCheck:
    """A readiness check asking the brokers for metadata over one cached client connection
    (PLAINTEXT to a bootstrap string, or TLS and SASL as a `KafkaConnection` says)."""

    def __init__(
        self,
        bootstrap: KafkaConnection | str,
        *,
        timeout: float = 2.0,
        cache_seconds: float = 5.0,
    ) -> None:
        self._kafka = kafka_connection(bootstrap)
        self._timeout = timeout
        self._cache_seconds = cache_seconds
        self._client: Any = None
        self._ok_until = 0.0
        self._lock = asyncio.Lock()

    async def __call__(self) -> None:
        """Pass if the brokers answered recently or answer a metadata request now."""
        if time.monotonic() < self._ok_until:
            return
        async with self._lock:
            if time.monotonic() < self._ok_until:
                return
            try:
                await asyncio.wait_for(self._probe(), self._timeout)
            except Exception:
                await self.close()
                raise
            self._ok_until = time.monotonic() + self._cache_seconds

    async def _probe(self) -> None:
        from aiokafka.client import AIOKafkaClient

        if self._client is None:
            client = AIOKafkaClient(
                **self._kafka.client_kwargs(),
                request_timeout_ms=int(self._timeout * 1000),
                client_id="servicekit-readiness",
            )
            self._client = client
            await start_or_explain(client.bootstrap, self._kafka, timeout=self._timeout)
        metadata = await self._client.fetch_all_metadata()
        if not metadata.brokers():
            raise RuntimeError("Kafka metadata lists no brokers")

    async def close(self) -> None:
        """Close the cached client (on failure, and at shutdown)."""
        client, self._client = self._client, None
        if client is not None:
            try:
                await client.close()
            except Exception as exc:
                log.debug("closing the Kafka readiness client failed: %s", exc)


class PlatformKafkaCheck:
    """The Kafka check of this process's own connection (`PlatformSettings`: EVENTKIT_KAFKA_*,
    TLS and SASL included), built on first use, so that settings are read at run time."""

    def __init__(self, *, timeout: float = 2.0, cache_seconds: float = 5.0) -> None:
        self._timeout = timeout
        self._cache_seconds = cache_seconds
        self._check: KafkaCheck | None = None

    async def __call__(self) -> None:
        if self._check is None:
            self._check = KafkaCheck(
                PlatformSettings().kafka_connection,
                timeout=self._timeout,
                cache_seconds=self._cache_seconds,
            )
        await self._check()

    async def close(self) -> None:
        """Close the client, if one was made."""
        if self._check is not None:
            await self._check.close()


def platform_kafka_check(*, timeout: float = 2.0) -> PlatformKafkaCheck:
    """A check of Kafka as this process's settings reach it (for `advisory_checks`)."""
    return PlatformKafkaCheck(timeout=timeout)


def kafka_check(
    bootstrap: KafkaConnection | str, *, timeout: float = 2.0, cache_seconds: float = 5.0
) -> KafkaCheck:
    """A readiness check for Kafka: cached metadata request with a short timeout; give
    `PlatformSettings().kafka_connection` so that TLS and SASL settings apply."""
    return KafkaCheck(bootstrap, timeout=timeout, cache_seconds=cache_seconds)
