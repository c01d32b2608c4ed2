"""Two tabs of one reviewer renewing their tokens at the same moment stay signed in: the UI
spends the session's refresh token once (servicekit.identity_client.TokenKeeper), so even an
identity without a grace interval for the just-rotated token (IDENTITY_REFRESH_GRACE_SECONDS=0)
sees no reuse. On the real identity app in process."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from servicekit.identity_client import TokenKeeper

WebRig = Any  # conftest.WebRig: review's UI on a real identity

pytestmark = pytest.mark.integration


@pytest.fixture
def no_refresh_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    """Identity (wired by the `web` fixture after this one) counts any second use as reuse."""
    monkeypatch.setenv("IDENTITY_REFRESH_GRACE_SECONDS", "0")


async def test_two_tabs_renewing_at_once_stay_signed_in(
    no_refresh_grace: None, web: WebRig
) -> None:
    await web.feed.submit(case_number="MK2026000101")
    async with web.client() as client:
        assert (await web.login(client, "point.reviewer1")).status_code == 303
        parts = web.app.state.web
        soon = timedelta(minutes=14, seconds=50)  # 15-minute tokens: in their renew window
        parts.keeper = TokenKeeper(
            web.app.state.token_verifier, parts.identity, clock=lambda: datetime.now(UTC) + soon
        )
        for _ in range(3):
            tabs = await asyncio.gather(client.get("/queue"), client.get("/queue"))
            assert [t.status_code for t in tabs] == [200, 200], [t.headers for t in tabs]
        assert (await client.get("/queue")).status_code == 200
    revoked = await web.service.pool.fetchval(
        "SELECT count(*) FROM identity.refresh_tokens WHERE revoked_at IS NOT NULL"
    )
    assert revoked == 0
