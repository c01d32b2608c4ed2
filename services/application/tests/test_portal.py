"""The candidate portal over HTTP: registration against the roster, login with captcha, the
personal centre, sessions and CSRF; on the real identity app (in process) and the service's
own database."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from application_service import bootstrap
from application_service.adapters.peers import IdentityPeer
from application_service.entrypoints.api import attach, build_app
from application_service.settings import ApplicationSettings
from conftest import open_window_in
from eventkit.migrations import migrate
from identity_service.adapters.pii import PiiCipher
from identity_service.bootstrap import Identity
from identity_service.bootstrap import wire as wire_identity
from identity_service.domain.id_card import check_digit
from identity_service.entrypoints.api import attach as attach_identity
from identity_service.entrypoints.api import build_app as build_identity
from identity_service.service_layer.roster import import_roster_file
from identity_service.settings import IdentitySettings
from identity_service.testing import captcha_answer
from servicekit.auth import JwksClient, TokenVerifier
from servicekit.identity_client import IdentityClient
from servicekit.signing import IDENTITY_ISSUER

pytestmark = pytest.mark.integration

IDENTITY_MIGRATIONS = (
    Path(__file__).resolve().parents[2] / "identity/src/identity_service/migrations"
)
ROSTER_HEADER = "准考证号,身份证号,姓名,性别,考区,报名区县,专业代码,已合格课程"
PASSWORD = "Zikao#2026pass"
SESSION_KEY = "p" * 43


def id_number(i: int) -> str:
    first17 = f"14010519900307{i * 2 + 1:03d}"  # odd: 男, as the roster says
    return first17 + check_digit(first17)


def ticket(i: int) -> str:
    return f"01011820{i:04d}"


def hidden(html: str, action: str) -> dict[str, str]:
    start = html.index(f'action="{action}"')
    chunk = html[start : html.index("</form>", start)]
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', chunk))


@dataclass
class PortalRig:
    identity: Identity
    service: bootstrap.ApplicationService
    app: Any

    def client(self) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=self.app, client=("10.7.7.7", 50000))
        return httpx.AsyncClient(transport=transport, base_url="http://portal")

    async def register(self, client: httpx.AsyncClient, i: int, **changes: str) -> httpx.Response:
        form = await client.get("/register")
        assert form.status_code == 200, form.text
        data = {
            **hidden(form.text, "/register"),
            "ticket_number": ticket(i), "id_number": id_number(i), "name": NAMES[i],
            "password": PASSWORD, "password_again": PASSWORD, "mobile": "13812345678",
        }  # fmt: skip
        return await client.post("/register", data={**data, **changes})

    async def login(
        self, client: httpx.AsyncClient, identifier: str, password: str = PASSWORD
    ) -> httpx.Response:
        form = await client.get("/login")
        assert form.status_code == 200, form.text
        fields = hidden(form.text, "/login")
        answer = await captcha_answer(self.identity, fields["captcha_id"])
        return await client.post(
            "/login",
            data={**fields, "identifier": identifier, "password": password,
                  "captcha_answer": answer},
        )  # fmt: skip


NAMES = ["张建国", "李晓燕", "王磊"]


@pytest.fixture
async def portal(
    service: bootstrap.ApplicationService, database: str, tmp_path: Path
) -> AsyncIterator[PortalRig]:
    await migrate(database, "identity", IDENTITY_MIGRATIONS)
    cipher = PiiCipher({"t1": b"k" * 32}, "t1", b"h" * 32)
    roster = tmp_path / "roster.csv"
    rows = [f"{ticket(i)},{id_number(i)},{NAMES[i]},男,140100,140105,580401," for i in range(3)]
    roster.write_text("\n".join([ROSTER_HEADER, *rows]) + "\n", encoding="utf-8")
    await import_roster_file(
        roster, pool=service.pool, cipher=cipher, actor="ops:test", today=date(2026, 11, 28)
    )
    identity = wire_identity(service.pool, IdentitySettings(), cipher)
    await identity.keys.ensure_key()
    identity_app = build_identity()
    attach_identity(identity_app, identity)
    transport = httpx.ASGITransport(app=identity_app)
    settings = ApplicationSettings(secure_cookies=False, session_key=SESSION_KEY)
    service.settings = settings
    service.identity = IdentityClient("http://identity", transport=transport)
    service.identity_peer = IdentityPeer("http://identity", transport=transport)
    jwks = httpx.AsyncClient(transport=transport, base_url="http://identity")
    verifier = TokenVerifier(
        JwksClient("http://identity/.well-known/jwks.json", http=jwks), issuer=IDENTITY_ISSUER
    )
    app = build_app()
    attach(app, service, verifier)
    try:
        yield PortalRig(identity, service, app)
    finally:
        await service.identity.aclose()
        await service.identity_peer.aclose()
        await jwks.aclose()


async def test_register_log_in_and_see_the_personal_centre(portal: PortalRig) -> None:
    await open_window_in(portal.service)
    async with portal.client() as client:
        first = await client.get("/centre")
        assert first.status_code == 303 and first.headers["location"].startswith("/login")
        registered = await portal.register(client, 0)
        assert registered.status_code == 303, registered.text
        assert registered.headers["location"] == "/login?registered=1"
        shown = await client.get("/login?registered=1")
        assert "注册成功" in shown.text
        logged_in = await portal.login(client, ticket(0))
        assert logged_in.status_code == 303, logged_in.text
        assert logged_in.headers["location"] == "/centre"
        centre = await client.get("/centre")
        assert centre.status_code == 200, centre.text
        assert "张建国" in centre.text
        assert id_number(0) not in centre.text  # only masked
        assert "免考申请" in centre.text and "已开放" in centre.text
        assert "script-src 'self'" in centre.headers["content-security-policy"]


async def test_registration_errors_stand_next_to_their_fields(portal: PortalRig) -> None:
    async with portal.client() as client:
        mismatch = await portal.register(client, 1, password_again="Other#2026pass")
        assert mismatch.status_code == 422 and "两次输入的密码不一致" in mismatch.text
        empty = await portal.register(client, 1, name="", mobile="")
        assert empty.status_code == 422
        assert "请输入姓名" in empty.text and "请输入手机号码" in empty.text
        bad_id = await portal.register(client, 1, id_number="140105199003070000")
        assert bad_id.status_code in (400, 422), bad_id.text
        assert 'id="id_number-error"' in bad_id.text
        stranger = await portal.register(client, 1, name="不是本人")
        assert 400 <= stranger.status_code < 500
        assert 'class="alert"' in stranger.text
        assert (await portal.register(client, 1)).status_code == 303
        again = await portal.register(client, 1)
        assert 400 <= again.status_code < 500 and 'class="alert"' in again.text
    async with portal.service.pool.acquire() as conn:
        accounts = await conn.fetchval("SELECT count(*) FROM identity.candidate_accounts")
    assert accounts == 1


async def test_login_refusals_and_logout(portal: PortalRig) -> None:
    async with portal.client() as client:
        assert (await portal.register(client, 2)).status_code == 303
        wrong = await portal.login(client, ticket(2), password="Wrong#2026pass")
        assert wrong.status_code == 401 and 'class="alert"' in wrong.text
        ok = await portal.login(client, id_number(2))
        assert ok.status_code == 303
        centre = await client.get("/centre")
        out = await client.post("/logout", data=hidden(centre.text, "/logout"))
        assert out.status_code == 303 and out.headers["location"] == "/login"
        assert (await client.get("/centre")).status_code == 303
        forged = await client.post("/logout", data={"csrf_token": "nope"})
        assert forged.status_code == 303  # no session: to the login page, nothing done


async def test_the_json_api_keeps_json_errors(portal: PortalRig) -> None:
    async with portal.client() as client:
        response = await client.get("/api/applications")
        assert response.status_code == 401
        assert response.json()["error"]["code"].startswith("auth.")
        missing = await client.get("/my/applications/not-a-uuid")
        assert missing.status_code in (303, 404, 422)


@pytest.fixture
def _unused(app_pool: asyncpg.Pool) -> None:  # keeps the import of asyncpg meaningful
    return None


def _id(value: str) -> uuid.UUID:
    return uuid.UUID(value)
