"""Test support for the candidate portal: the real identity app in process, the application
service wired to it, and a browser-like client that registers and logs in through the pages.

    from portal_support import PortalRig, hidden, portal_rig
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from application_service import bootstrap
from application_service.adapters.peers import CredentialPeer, IdentityPeer
from application_service.entrypoints.api import attach, build_app
from application_service.settings import ApplicationSettings
from contracts.base import DEV_ONLY_ID_FINGERPRINT_KEY
from credential_verify_service import bootstrap as cv_bootstrap
from credential_verify_service.adapters._http import ProviderConfig
from credential_verify_service.adapters.candidates import CANDIDATES_SCHEMA, Candidates
from credential_verify_service.adapters.chsi import ChsiClient
from credential_verify_service.adapters.neea import NeeaClient
from credential_verify_service.entrypoints.api import attach as cv_attach
from credential_verify_service.entrypoints.api import build_app as cv_app
from credential_verify_service.settings import CredentialSettings
from eventkit.db import create_pool
from eventkit.migrations import migrate
from eventkit.projection import use_schema
from identity_service.adapters.pii import PiiCipher
from identity_service.adapters.refresh_tokens import RefreshSettings
from identity_service.bootstrap import Identity
from identity_service.bootstrap import wire as wire_identity
from identity_service.domain.id_card import check_digit
from identity_service.service_layer.roster import import_roster_file
from identity_service.settings import IdentitySettings
from identity_service.testing import (
    IDENTITY_URL,
    SocketIdentity,
    captcha_answer,
    in_process,
    latest_sms_code,
)
from servicekit.auth import TokenVerifier
from servicekit.identity_client import IdentityClient
from servicekit.testing import free_port, serve, serve_in_process

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
    credential_pool: asyncpg.Pool | None = None  # with `portal_rig(..., credential=...)`
    identity_server: SocketIdentity | None = None  # with `portal_rig(..., identity_socket=True)`
    sms_url: str = ""  # the SMS sandbox identity sends through

    def client(self) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=self.app, client=("10.7.7.7", 50000))
        return httpx.AsyncClient(transport=transport, base_url="http://portal")

    async def register(self, client: httpx.AsyncClient, i: int, **changes: str) -> httpx.Response:
        """Fill the form, press 获取短信验证码, read the code the SMS sandbox got, press 注册
        (`changes` apply to the last step; a `mobile` that is not one gets no code)."""
        form = await client.get("/register")
        assert form.status_code == 200, form.text
        values = {
            "ticket_number": ticket(i), "id_number": id_number(i), "name": NAMES[i],
            "password": PASSWORD, "password_again": PASSWORD, "mobile": "13812345678",
            **{k: v for k, v in changes.items() if k in ("ticket_number", "id_number", "name",
                                                          "mobile")},
        }  # fmt: skip
        code = "000000"
        if re.fullmatch(r"1[3-9]\d{9}", values["mobile"]) and "sms_code" not in changes:
            form = await self.send_sms_code(client, form.text, values)
            assert "验证码已发送至" in form.text, form.text
            code = await latest_sms_code(self.sms_url, values["mobile"])
        fields = hidden(form.text, "/register")
        data = {
            **fields, **values, "captcha_answer": await captcha_answer(self.identity,
                                                                     fields["captcha_id"]),
            "sms_code": code, "action": "register",
        }  # fmt: skip
        return await client.post("/register", data={**data, **changes})

    async def send_sms_code(
        self, client: httpx.AsyncClient, html: str, values: dict[str, str]
    ) -> httpx.Response:
        """Press 获取短信验证码 on the registration form `html` with `values` typed in."""
        fields = hidden(html, "/register")
        answer = await captcha_answer(self.identity, fields["captcha_id"])
        return await client.post(
            "/register",
            data={**fields, **values, "captcha_answer": answer, "action": "send_sms"},
        )

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

    async def candidate_id(self, ticket_number: str) -> uuid.UUID:
        """The id identity gave the candidate registered with `ticket_number`."""
        found = await self.service.pool.fetchval(
            "SELECT candidate_id FROM identity.candidate_accounts WHERE ticket_number = $1",
            ticket_number,
        )
        assert found is not None, f"no candidate registered with ticket {ticket_number}"
        return uuid.UUID(str(found))

    async def sign_up(
        self, client: httpx.AsyncClient, person: Person, *, sync: bool = True
    ) -> uuid.UUID:
        """Register a sandbox person through the pages, log in, and (with `sync`) relay the
        registration to credential-verify as its consumer would; the candidate's id."""
        changes = {"ticket_number": person.ticket, "id_number": person.id_number,
                   "name": person.name}  # fmt: skip
        registered = await self.register(client, 0, **changes)
        assert registered.status_code == 303, registered.text
        logged_in = await self.login(client, person.ticket)
        assert logged_in.status_code == 303, logged_in.text
        candidate_id = await self.candidate_id(person.ticket)
        if sync:
            await self.sync(candidate_id)
        return candidate_id

    async def sync(self, candidate_id: uuid.UUID) -> None:
        """Relay identity's CandidateRegistered to credential-verify."""
        assert self.credential_pool is not None, "portal_rig(..., credential=...) needed"
        await relay_registration(self.identity, self.credential_pool, candidate_id)


NAMES = ["张建国", "李晓燕", "王磊"]


# --- credential-verify in process, the CHSI and NEEA sandboxes as processes ---------------------

# Identity fingerprints ID numbers with the key credential-verify matches CHSI records with.
CHSI_CIPHER = PiiCipher({"t1": b"k" * 32}, "t1", DEV_ONLY_ID_FINGERPRINT_KEY)


@dataclass(frozen=True)
class Person:
    """A sandbox person (tools/sandboxes/README.md) on identity's roster."""

    ticket: str
    id_number: str
    name: str
    chsi_password: str

    @property
    def gender(self) -> str:
        return "男" if int(self.id_number[16]) % 2 else "女"


ZHANG = Person("010118100001", "140105199003152018", "张建国", "sandbox-zhang")
LI = Person("010118100002", "140106199107221029", "李晓燕", "sandbox-li")


@dataclass(frozen=True)
class CredentialSetup:
    """Where the rig's credential-verify keeps its data and finds the sandboxes."""

    database: str
    chsi_url: str
    neea_url: str


@contextmanager
def chsi_neea_sandboxes(logs: Path) -> Iterator[tuple[str, str]]:
    """The CHSI and NEEA sandboxes as uvicorn processes: their base URLs."""
    chsi_port = free_port()
    env = {**os.environ, "SANDBOX_CHSI_PUBLIC_URL": f"http://127.0.0.1:{chsi_port}"}
    with (
        serve("sandboxes.chsi:app", env, logs / "chsi.log", port=chsi_port, ready_path="/healthz")
        as chsi,
        serve("sandboxes.neea:app", env, logs / "neea.log", ready_path="/healthz") as neea,
    ):  # fmt: skip
        yield chsi, neea


def provider(url: str, secret: str) -> ProviderConfig:
    return ProviderConfig(base_url=url, client_secret=secret, timeout=3.0, connect_timeout=1.0,
                          retry_attempts=2, failure_threshold=50)  # fmt: skip


@asynccontextmanager
async def credential_verify(
    setup: CredentialSetup, verifier: TokenVerifier
) -> AsyncIterator[tuple[CredentialPeer, asyncpg.Pool]]:
    """credential-verify in process on its own database, wired to the sandboxes (restored to
    their seed first); CHSI's callback cannot reach it (no socket), so polling completes
    authorisations. Its client and its pool."""
    async with httpx.AsyncClient() as http:
        for base in (setup.chsi_url, setup.neea_url):
            (await http.post(f"{base}/_sandbox/reset")).raise_for_status()
    await cv_bootstrap.prepare_database(setup.database)
    pool = await create_pool(setup.database, min_size=1, max_size=10)
    settings = CredentialSettings(
        chsi_url=setup.chsi_url, neea_url=setup.neea_url, public_url="http://127.0.0.1:9"
    )
    service = cv_bootstrap.wire(
        pool,
        settings,
        chsi=ChsiClient(provider(setup.chsi_url, "chsi-sandbox-secret")),
        neea=NeeaClient(provider(setup.neea_url, "neea-sandbox-secret")),
    )
    app = cv_app()
    cv_attach(app, service, verifier)
    peer = CredentialPeer("http://credential", transport=httpx.ASGITransport(app=app), timeout=15.0)
    try:
        yield peer, pool
    finally:
        await peer.aclose()
        await service.chsi.aclose()
        await service.neea.aclose()
        await pool.close()


async def relay_registration(
    identity: Identity, cv_pool: asyncpg.Pool, candidate_id: uuid.UUID
) -> None:
    """Apply identity's CandidateRegistered to credential-verify's candidates projection."""
    [event] = await identity.accounts._store.load("identity.candidate", str(candidate_id))
    async with cv_pool.acquire() as conn, conn.transaction():
        await use_schema(conn, CANDIDATES_SCHEMA)
        await Candidates().apply(conn, event)


async def approve_in_chsi_app(qr_content: str, person: Person, record: str) -> None:
    """Play the candidate in the CHSI app: sign in on the approve page, approve one record."""
    async with httpx.AsyncClient(timeout=10) as http:
        page = await http.post(
            qr_content,
            data={"action": "login", "id_number": person.id_number,
                  "password": person.chsi_password},
        )  # fmt: skip
        assert page.status_code == 200, page.text
        session = page.text.split('name="session" value="', 1)[1].split('"', 1)[0]
        done = await http.post(
            qr_content, data={"action": "approve", "session": session, "record_id": [record]}
        )
        assert done.status_code == 200, done.text


@asynccontextmanager
async def portal_rig(
    service: bootstrap.ApplicationService,
    database: str,
    tmp_path: Path,
    *,
    credential: CredentialSetup | None = None,
    refresh_settings: RefreshSettings | None = None,
    identity_socket: bool = False,
) -> AsyncIterator[PortalRig]:
    """The portal on `service` (its database also holds identity's schema, roster of NAMES).

    With `credential`, also credential-verify in process (`service.credential`) on the
    sandboxes, and the sandbox people ZHANG and LI on the roster (`rig.sign_up`).
    `refresh_settings` are identity's (the refresh grace interval). With `identity_socket`,
    identity is served on a real socket (`rig.identity_server`) that the test may stop, make
    answer 503, and start again; the portal reaches and verifies it as deployed (JWKS over HTTP,
    a refetch at most every 5 s)."""
    await migrate(database, "identity", IDENTITY_MIGRATIONS)
    cipher = PiiCipher({"t1": b"k" * 32}, "t1", b"h" * 32) if credential is None else CHSI_CIPHER
    roster = tmp_path / "roster.csv"
    rows = [f"{ticket(i)},{id_number(i)},{NAMES[i]},男,140100,140105,580401," for i in range(3)]
    if credential is not None:
        rows += [f"{p.ticket},{p.id_number},{p.name},{p.gender},140100,140105,580401,"
                 for p in (ZHANG, LI)]  # fmt: skip
    roster.write_text("\n".join([ROSTER_HEADER, *rows]) + "\n", encoding="utf-8")
    await import_roster_file(
        roster, pool=service.pool, cipher=cipher, actor="ops:test", today=date(2026, 11, 28)
    )
    async with serve_in_process(sms_sandbox_app()) as sms_url:
        identity = wire_identity(
            service.pool, rig_identity_settings(sms_url), cipher, refresh_settings
        )
        async with _portal_rig(service, identity, identity_socket, credential) as rig:
            rig.sms_url = sms_url
            yield rig
        await identity.sms_sender.aclose()  # type: ignore[attr-defined]


def sms_sandbox_app() -> Any:
    """The SMS gateway sandbox's app (served in process by the rigs)."""
    from sandboxes import sms

    return sms.create_app(fault_timeout=1.0)


def rig_identity_settings(sms_url: str) -> IdentitySettings:
    """Identity on the SMS sandbox at `sms_url`; sends not throttled (identity tests that)."""
    return IdentitySettings(
        sms_url=sms_url, sms_sends_per_mobile=10_000, sms_sends_per_address=10_000
    )


@asynccontextmanager
async def _portal_rig(
    service: bootstrap.ApplicationService,
    identity: Identity,
    identity_socket: bool,
    credential: CredentialSetup | None,
) -> AsyncIterator[PortalRig]:
    await identity.keys.ensure_key()
    service.settings = ApplicationSettings(secure_cookies=False, session_key=SESSION_KEY)
    if identity_socket:
        server = SocketIdentity(identity)
        await server.start()
        service.identity = IdentityClient(server.url, timeout=2.0)
        service.identity_peer = IdentityPeer(server.url, timeout=2.0)
        app = build_app()
        attach(app, service, server.verifier(min_refresh_interval=5))
        try:
            yield PortalRig(identity, service, app, identity_server=server)
        finally:
            await service.identity.aclose()
            await service.identity_peer.aclose()
            await server.stop()
        return
    async with in_process(identity) as (transport, verifier):
        service.identity = IdentityClient(IDENTITY_URL, transport=transport)
        service.identity_peer = IdentityPeer(IDENTITY_URL, transport=transport)
        app = build_app()
        attach(app, service, verifier)
        try:
            if credential is None:
                yield PortalRig(identity, service, app)
            else:
                async with credential_verify(credential, verifier) as (peer, cv_pool):
                    service.credential = peer
                    yield PortalRig(identity, service, app, credential_pool=cv_pool)
        finally:
            await service.identity.aclose()
            await service.identity_peer.aclose()


async def start_qr(client: httpx.AsyncClient) -> str:
    """获取学信网二维码 through the page: the authorisation's page path."""
    shown = await client.get("/degrees")
    assert shown.status_code == 200, shown.text
    started = await client.post("/degrees/qr", data=hidden(shown.text, "/degrees/qr"))
    assert started.status_code == 303, started.text
    location = started.headers["location"]
    assert re.fullmatch(r"/degrees/qr/[0-9a-f-]{36}", location), location
    return location


def qr_link(html: str) -> str:
    found = re.search(r'<a href="(http://127\.0\.0\.1:\d+/app/approve/[^"]+)"', html)
    assert found, html
    return found.group(1)
