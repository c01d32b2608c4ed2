"""Test support for the candidate portal: the real identity app in process, the application
service wired to it, and a browser-like client that registers and logs in through the pages.

    from portal_support import PortalRig, hidden, portal_rig
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import httpx

from application_service import bootstrap
from application_service.adapters.peers import IdentityPeer
from application_service.entrypoints.api import attach, build_app
from application_service.settings import ApplicationSettings
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


@asynccontextmanager
async def portal_rig(
    service: bootstrap.ApplicationService, database: str, tmp_path: Path
) -> AsyncIterator[PortalRig]:
    """The portal on `service` (its database also holds identity's schema, roster of NAMES)."""
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
