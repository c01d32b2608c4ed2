"""Fixtures of credential-verify's integration tests: the CHSI and NEEA sandboxes as real
processes, a fresh database, the service's API served in-process on a real socket (so the
sandbox can call it back), candidates as identity announces them, and signed tokens."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from contracts.base import DEV_ONLY_ID_FINGERPRINT_KEY, fingerprint_id_number, mask_id_number
from contracts.identity import CANDIDATE_STREAM, CandidateRegistered
from credential_verify_service import bootstrap
from credential_verify_service.adapters._http import ProviderConfig
from credential_verify_service.adapters.candidates import CANDIDATES_SCHEMA, Candidates
from credential_verify_service.adapters.chsi import ChsiClient
from credential_verify_service.adapters.neea import NeeaClient
from credential_verify_service.entrypoints.api import attach, build_app
from credential_verify_service.settings import CredentialSettings
from eventkit.db import create_pool
from eventkit.envelope import Actor, EventEnvelope
from eventkit.projection import use_schema
from servicekit.auth import StaticKeys, TokenVerifier
from servicekit.signing import IDENTITY_ISSUER, Ed25519KeyPair, issue_token
from servicekit.testing import free_port, serve, serve_in_process

CHSI_SECRET = "chsi-sandbox-secret"
NEEA_SECRET = "neea-sandbox-secret"


@dataclass(frozen=True)
class Person:
    """A seeded person of the sandboxes, as identity's roster knows them."""

    name: str
    id_number: str
    password: str
    candidate_id: uuid.UUID


# The sandboxes' seed (tools/sandboxes/README.md); the roster name of 赵敏 differs from her
# CHSI record (赵小敏), which is the "another person's record" scenario.
ZHANG = Person("张建国", "140105199003152018", "sandbox-zhang", uuid.uuid4())
LI = Person("李晓燕", "140106199107221029", "sandbox-li", uuid.uuid4())
WANG = Person("王磊", "140107199504083017", "sandbox-wang", uuid.uuid4())
ZHAO = Person("赵敏", "14010919870611502X", "sandbox-zhao", uuid.uuid4())
LIU = Person("刘芳", "140202199802246025", "sandbox-liu", uuid.uuid4())


@pytest.fixture(scope="session")
def people() -> dict[str, Person]:
    return {"zhang": ZHANG, "li": LI, "wang": WANG, "zhao": ZHAO, "liu": LIU}


@dataclass(frozen=True)
class Sandboxes:
    chsi: str
    neea: str

    async def reset(self) -> None:
        async with httpx.AsyncClient() as http:
            for base in (self.chsi, self.neea):
                (await http.post(f"{base}/_sandbox/reset")).raise_for_status()

    async def fault(self, which: str, mode: str, count: int = 100) -> None:
        base = self.chsi if which == "chsi" else self.neea
        async with httpx.AsyncClient() as http:
            response = await http.post(
                f"{base}/_sandbox/faults", json={"mode": mode, "count": count}
            )
            response.raise_for_status()


@pytest.fixture(scope="session")
def sandboxes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandboxes]:
    """Both sandboxes as uvicorn processes on free ports (timeouts injected last 3 s)."""
    logs = tmp_path_factory.mktemp("sandboxes")
    chsi_port = free_port()
    env = {
        **os.environ,
        "SANDBOX_CHSI_PUBLIC_URL": f"http://127.0.0.1:{chsi_port}",
        "SANDBOX_FAULT_TIMEOUT_SECONDS": "3",
    }
    with (
        serve("sandboxes.chsi:app", env, logs / "chsi.log", port=chsi_port, ready_path="/healthz")
        as chsi,
        serve("sandboxes.neea:app", env, logs / "neea.log", ready_path="/healthz") as neea,
    ):  # fmt: skip
        yield Sandboxes(chsi, neea)


@pytest.fixture
async def fresh_sandboxes(sandboxes: Sandboxes) -> Sandboxes:
    """The sandboxes restored to their seed, faults off."""
    await sandboxes.reset()
    return sandboxes


@pytest.fixture
async def cv_pool(database: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on a fresh database with credential-verify's schema and projection."""
    await bootstrap.prepare_database(database)
    pool = await create_pool(database, min_size=1, max_size=10)
    yield pool
    await pool.close()


Register = Callable[[Person], Awaitable[None]]


@pytest.fixture
def register(cv_pool: asyncpg.Pool) -> Register:
    """Apply identity's CandidateRegistered for a person to the candidates projection."""

    async def apply(person: Person) -> None:
        event = CandidateRegistered(
            candidate_id=person.candidate_id,
            admission_ticket_number="010118100001",
            name=person.name,
            gender="male",
            id_number_masked=mask_id_number(person.id_number),
            id_number_fingerprint=fingerprint_id_number(
                person.id_number, DEV_ONLY_ID_FINGERPRINT_KEY
            ),
        )
        envelope = EventEnvelope(
            event_id=uuid.uuid4(),
            event_type=CandidateRegistered.event_type,
            schema_version=1,
            stream_type=CANDIDATE_STREAM.stream_type,
            stream_id=str(person.candidate_id),
            stream_version=1,
            occurred_at=datetime.now(UTC),
            correlation_id=uuid.uuid4(),
            actor=Actor(kind="candidate", id=str(person.candidate_id)),
            payload=event.model_dump(mode="json"),
        )
        async with cv_pool.acquire() as conn, conn.transaction():
            await use_schema(conn, CANDIDATES_SCHEMA)
            await Candidates().apply(conn, envelope)

    return apply


KEYPAIR = Ed25519KeyPair.generate("cv-test")


def token_of(person: Person) -> dict[str, str]:
    token = issue_token(
        KEYPAIR,
        subject=str(person.candidate_id),
        kind="candidate",
        roles=["candidate"],
        issuer=IDENTITY_ISSUER,
        ttl=timedelta(minutes=10),
    )
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="session")
def auth() -> Callable[[Person], dict[str, str]]:
    return token_of


@dataclass
class Running:
    """The service under test: its wiring, its URL, and a client on it."""

    service: bootstrap.CredentialVerify
    url: str
    client: httpx.AsyncClient
    pool: asyncpg.Pool

    async def events(self, event_type: str | None = None) -> list[Any]:
        rows = await self.pool.fetch("SELECT event_type, payload FROM eventkit.events ORDER BY seq")
        return [r for r in rows if event_type is None or r["event_type"] == event_type]


def provider(url: str, secret: str) -> ProviderConfig:
    """Short timeouts and few retries, so fault tests stay fast."""
    return ProviderConfig(
        base_url=url,
        client_secret=secret,
        timeout=1.0,
        connect_timeout=0.5,
        retry_attempts=2,
        failure_threshold=50,
    )


@pytest.fixture
async def running(cv_pool: asyncpg.Pool, fresh_sandboxes: Sandboxes) -> AsyncIterator[Running]:
    """credential-verify's API on a real socket, wired to the sandboxes."""
    port = free_port()
    settings = CredentialSettings(
        chsi_url=fresh_sandboxes.chsi,
        neea_url=fresh_sandboxes.neea,
        public_url=f"http://127.0.0.1:{port}",
    )
    service = bootstrap.wire(
        cv_pool,
        settings,
        chsi=ChsiClient(provider(fresh_sandboxes.chsi, CHSI_SECRET)),
        neea=NeeaClient(provider(fresh_sandboxes.neea, NEEA_SECRET)),
    )
    app = build_app()
    attach(app, service, TokenVerifier(StaticKeys({KEYPAIR.kid: KEYPAIR.public_key}),
                                       issuer=IDENTITY_ISSUER))  # fmt: skip
    async with (
        serve_in_process(app, port=port) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as client,
    ):
        yield Running(service, url, client, cv_pool)
    await service.chsi.aclose()
    await service.neea.aclose()


class ChsiApp:
    """Plays the candidate in the CHSI app: sign in on the approve page, then decide."""

    def __init__(self, qr_content: str) -> None:
        self.url = qr_content

    async def decide(self, person: Person, action: str, records: list[str] = ()) -> httpx.Response:  # type: ignore[assignment]
        async with httpx.AsyncClient(timeout=10) as http:
            page = await http.post(
                self.url,
                data={
                    "action": "login",
                    "id_number": person.id_number,
                    "password": person.password,
                },
            )
            assert page.status_code == 200, page.text
            marker = 'name="session" value="'
            session = page.text.split(marker, 1)[1].split('"', 1)[0]
            return await http.post(
                self.url, data={"action": action, "session": session, "record_id": list(records)}
            )


@pytest.fixture(scope="session")
def chsi_app() -> Callable[[str], ChsiApp]:
    return ChsiApp


async def wait_for(check: Callable[[], Awaitable[bool]], timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.1)


@pytest.fixture(scope="session")
def eventually() -> Callable[..., Awaitable[None]]:
    return wait_for
