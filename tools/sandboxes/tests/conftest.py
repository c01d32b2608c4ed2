"""Fixtures for the sandbox tests: a settable clock, in-process apps and clients."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI

from sandboxes import chsi, neea

CHSI_SECRET = "chsi-sandbox-secret"
NEEA_SECRET = "neea-sandbox-secret"


@dataclass
class FakeClock:
    """A clock tests move by hand."""

    now: datetime = field(default_factory=lambda: datetime(2026, 5, 20, 2, 0, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@dataclass
class CallbackRecorder:
    """An httpx mock transport that records callbacks and answers scripted statuses."""

    statuses: list[int] = field(default_factory=list)
    requests: list[httpx.Request] = field(default_factory=list)

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        status = self.statuses.pop(0) if self.statuses else 200
        return httpx.Response(status, json={"ok": status < 300})


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def callbacks() -> CallbackRecorder:
    return CallbackRecorder()


@pytest.fixture
async def chsi_app(clock: FakeClock, callbacks: CallbackRecorder) -> AsyncIterator[FastAPI]:
    app = chsi.create_app(
        clock=clock,
        fault_timeout=0.05,
        callback_backoff=(0.01, 0.01, 0.01),
        callback_transport=httpx.MockTransport(callbacks.handler),
    )
    yield app
    await app.state.sandbox.close()


@pytest.fixture
async def chsi_client(chsi_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=chsi_app),
        base_url="http://127.0.0.1:8201",
        headers={"Authorization": f"Bearer {CHSI_SECRET}"},
    ) as client:
        yield client


@pytest.fixture
async def neea_client() -> AsyncIterator[httpx.AsyncClient]:
    app = neea.create_app(fault_timeout=0.05)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://127.0.0.1:8202",
        headers={"Authorization": f"Bearer {NEEA_SECRET}"},
    ) as client:
        yield client
