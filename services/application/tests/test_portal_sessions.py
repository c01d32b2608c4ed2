"""The portal's sessions at peak and through identity's bad moments: two tabs renewing at once
stay signed in, and identity stopped, answering 503 or rotating its signing keys shows "请稍后重试"
and keeps the session; only a refused refresh token ends it. On the real identity app (in
process, or on a real socket the test stops and starts again)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from portal_support import PortalRig, portal_rig, ticket

from application_service import bootstrap
from application_service.entrypoints.portal.base import COOKIE, Portal
from identity_service.adapters.refresh_tokens import RefreshSettings
from servicekit.identity_client import TokenKeeper

pytestmark = pytest.mark.integration

# The keeper's clock 14 min 50 s on: identity's 15-minute access tokens are in their renew window.
RENEW_WINDOW = timedelta(minutes=14, seconds=50)


def renewing_every_request(rig: PortalRig, *, restarted: bool = False) -> None:
    """Every request of the portal renews its session's tokens (the renew window); `restarted`:
    as a freshly started portal process, with a verifier that has not fetched identity's keys."""
    portal: Portal = rig.app.state.portal
    verifier = rig.app.state.token_verifier
    if restarted:
        assert rig.identity_server is not None
        verifier = rig.identity_server.verifier(min_refresh_interval=5)
    portal.keeper = TokenKeeper(
        verifier, portal.identity, clock=lambda: datetime.now(UTC) + RENEW_WINDOW
    )


async def signed_in_client(rig: PortalRig, client: httpx.AsyncClient, i: int) -> None:
    assert (await rig.register(client, i)).status_code == 303
    logged_in = await rig.login(client, ticket(i))
    assert logged_in.status_code == 303, logged_in.text
    assert (await client.get("/centre")).status_code == 200


async def families(rig: PortalRig) -> list[tuple[int, int]]:
    """(tokens, revoked tokens) per refresh family."""
    rows = await rig.service.pool.fetch(
        "SELECT count(*) AS n, count(revoked_at) AS revoked FROM identity.refresh_tokens"
        " GROUP BY family_id"
    )
    return [(int(r["n"]), int(r["revoked"])) for r in rows]


def assert_try_again_later(response: httpx.Response) -> None:
    assert response.status_code == 503, (response.status_code, response.headers)
    for cookie in response.headers.get_list("set-cookie"):
        assert not (cookie.startswith(f"{COOKIE}=") and "max-age=0" in cookie.lower()), cookie
    assert int(response.headers["retry-after"]) > 0
    assert "请稍后重试" in response.text


@pytest.fixture
async def strict_portal(
    service: bootstrap.ApplicationService, database: str, tmp_path: Path
) -> AsyncIterator[PortalRig]:
    """Identity without a refresh grace interval: only the portal's single flight keeps two
    concurrent renewals of one session from counting as reuse."""
    strict = RefreshSettings(refresh_grace_seconds=0)
    async with portal_rig(service, database, tmp_path, refresh_settings=strict) as rig:
        yield rig


@pytest.fixture
async def socket_portal(
    service: bootstrap.ApplicationService, database: str, tmp_path: Path
) -> AsyncIterator[PortalRig]:
    async with portal_rig(service, database, tmp_path, identity_socket=True) as rig:
        yield rig


async def test_two_tabs_renewing_at_once_stay_signed_in(strict_portal: PortalRig) -> None:
    async with strict_portal.client() as client:
        await signed_in_client(strict_portal, client, 0)
        renewing_every_request(strict_portal)
        for _ in range(3):
            tabs = await asyncio.gather(client.get("/centre"), client.get("/apply"))
            assert [t.status_code for t in tabs] == [200, 200], [t.headers for t in tabs]
        assert (await client.get("/centre")).status_code == 200
    [(issued, revoked)] = await families(strict_portal)
    assert revoked == 0 and issued == 1 + 3 + 1  # login, one renewal per pair, the last one


async def test_identity_stopped_or_answering_503_keeps_the_session(
    socket_portal: PortalRig,
) -> None:
    server = socket_portal.identity_server
    assert server is not None
    async with socket_portal.client() as client:
        await signed_in_client(socket_portal, client, 0)
        renewing_every_request(socket_portal)
        await server.stop()
        renewing_every_request(socket_portal, restarted=True)  # it never saw identity's keys
        assert_try_again_later(await client.get("/apply"))
        renewing_every_request(socket_portal)
        assert_try_again_later(await client.get("/centre"))
        assert_try_again_later(await client.get("/apply"))
        renewing_every_request(socket_portal, restarted=True)
        await server.start(answering_503=True)
        assert_try_again_later(await client.get("/apply"))
        await server.start()
        deadline = time.monotonic() + 15
        while (back := await client.get("/apply")).status_code == 503:
            assert time.monotonic() < deadline, "identity is back, the portal still says 503"
            await asyncio.sleep(0.5)
        assert back.status_code == 200, (back.status_code, back.headers)
        assert (await client.get("/centre")).status_code == 200
    assert [revoked for _, revoked in await families(socket_portal)] == [0]


async def test_a_signing_key_unknown_during_rotation_keeps_the_session(
    socket_portal: PortalRig,
) -> None:
    async with socket_portal.client() as client:
        await signed_in_client(socket_portal, client, 0)  # the portal has identity's keys now
        await socket_portal.identity.keys.rotate()  # new tokens are signed with a new key
        renewing_every_request(socket_portal)
        renewed = await client.get("/apply")  # renews: the new key is not known yet
        assert_try_again_later(renewed)
        assert any(c.startswith(f"{COOKIE}=") for c in renewed.headers.get_list("set-cookie"))
        deadline = time.monotonic() + 15
        while (later := await client.get("/apply")).status_code == 503:
            assert time.monotonic() < deadline, "the portal never learnt identity's new key"
            await asyncio.sleep(0.5)
        assert later.status_code == 200, (later.status_code, later.headers)
    assert [revoked for _, revoked in await families(socket_portal)] == [0]
