"""Identity's HTTP API on a real PostgreSQL: registration, captcha login, tokens, bad input."""

from __future__ import annotations

import asyncio
import base64
import logging
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import jwt
import pytest
from prometheus_client import REGISTRY

from identity_service.adapters.captcha import ALPHABET
from identity_service.adapters.pii import PiiCipher
from identity_service.adapters.sms import HttpSmsSender
from identity_service.bootstrap import Identity, wire
from identity_service.domain.id_card import check_digit
from identity_service.entrypoints.api import attach, build_app
from identity_service.service_layer.roster import import_roster_file
from identity_service.service_layer.sms_codes import MAX_ATTEMPTS
from identity_service.settings import IdentitySettings
from identity_service.testing import (
    captcha_answer,
    latest_sms_code,
    request_sms_code,
    sms_messages,
)
from servicekit.auth import StaticKeys, TokenVerifier
from servicekit.errors import AppError
from servicekit.signing import Ed25519KeyPair
from servicekit.testing import free_port

pytestmark = pytest.mark.integration

CIPHER = PiiCipher({"t1": b"k" * 32}, "t1", b"h" * 32)
HEADER = "准考证号,身份证号,姓名,性别,考区,报名区县,专业代码,已合格课程"
PASSWORD = "Zikao#2026"
NAMES = ["张三", "李四", "王五", "赵六", "孙七"]


def id_number(sequence: int) -> str:
    first17 = f"14010519900101{(sequence * 2 + 1) % 1000:03d}"
    return first17 + check_digit(first17)


def ticket(i: int) -> str:
    return f"0101181{i:05d}"


@pytest.fixture
async def service(identity_pool: asyncpg.Pool, tmp_path: Path, sms_url: str) -> Identity:
    rows = [
        f"{ticket(i)},{id_number(i)},{NAMES[i]},男,140100,140105,580401,00015" for i in range(5)
    ]
    path = tmp_path / "roster.csv"
    path.write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    await import_roster_file(
        path, pool=identity_pool, cipher=CIPHER, actor="ops:test", today=date(2026, 11, 28)
    )
    # Concurrent hashes here wait for a slot as long as a loaded test machine needs; the 503
    # after a short wait is tested on its own.
    identity = wire(identity_pool, settings_for(sms_url), CIPHER)
    await identity.keys.ensure_key()
    return identity


def settings_for(sms_url: str, **changes: Any) -> IdentitySettings:
    """The SMS sandbox at `sms_url`; sends not throttled unless `changes` say (tested apart)."""
    settings: dict[str, Any] = {
        "password_hash_wait_seconds": 30,
        "sms_url": sms_url,
        "sms_sends_per_mobile": 1000,
        "sms_sends_per_address": 1000,
    }
    return IdentitySettings(**{**settings, **changes})


async def solve_captcha(client: httpx.AsyncClient, service: Identity) -> dict[str, str]:
    """Fetch a captcha and find its answer from the stored keyed hash (tests only)."""
    response = await client.get("/api/identity/captcha")
    assert response.status_code == 200
    body = response.json()
    assert base64.b64decode(body["image"].split(",", 1)[1]).startswith(b"\x89PNG")
    captcha_id = uuid.UUID(body["captcha_id"])
    return {
        "captcha_id": str(captcha_id),
        "captcha_answer": await captcha_answer(service, captcha_id),
    }


def registration(i: int, **changes: str) -> dict[str, str]:
    body = {
        "ticket_number": ticket(i),
        "id_number": id_number(i),
        "name": NAMES[i],
        "password": PASSWORD,
        "mobile": "13812345678",
    }
    return {**body, **changes}


async def register(
    client: httpx.AsyncClient, service: Identity, body: dict[str, str]
) -> httpx.Response:
    """POST a registration with a solved captcha and the SMS code the sandbox got (a body with
    its own `sms_code` keeps it)."""
    code = body.get("sms_code") or await sms_code_for(client, service, body["mobile"])
    captcha = await solve_captcha(client, service)
    return await client.post("/api/identity/candidates", json={"sms_code": code, **body, **captcha})


async def sms_code_for(client: httpx.AsyncClient, service: Identity, mobile: str) -> str:
    """A registration code sent to `mobile`, read from the sandbox (a number that is not one
    gets a made-up code: registration refuses the number first)."""
    if not re.fullmatch(r"1[3-9]\d{9}", mobile):
        return "000000"
    return await request_sms_code(client, service, service_sms_url(service), mobile)


async def with_code(
    client: httpx.AsyncClient, service: Identity, body: dict[str, str]
) -> dict[str, str]:
    """`body` with a fresh SMS code for its mobile number."""
    return {**body, "sms_code": await sms_code_for(client, service, body["mobile"])}


def service_sms_url(service: Identity) -> str:
    """The SMS sandbox the service sends through."""
    sender = service.sms_sender
    assert isinstance(sender, HttpSmsSender)
    return str(sender.base_url)


async def login(
    client: httpx.AsyncClient, service: Identity, identifier: str, password: str = PASSWORD
) -> httpx.Response:
    captcha = await solve_captcha(client, service)
    return await client.post(
        "/api/identity/login", json={"identifier": identifier, "password": password, **captcha}
    )


def error(response: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = response.json()["error"]
    return body


async def test_register_login_refresh_logout(client: httpx.AsyncClient, service: Identity) -> None:
    created = await register(client, service, registration(0))
    assert created.status_code == 201, created.text
    candidate_id = created.json()["candidate_id"]

    by_ticket = await login(client, service, ticket(0))
    assert by_ticket.status_code == 200, by_ticket.text
    by_id = await login(client, service, id_number(0).lower())
    assert by_id.status_code == 200, by_id.text
    tokens = by_id.json()

    jwks = (await client.get("/.well-known/jwks.json")).json()
    keys = {k["kid"]: jwt.PyJWK(k).key for k in jwks["keys"]}
    verifier = TokenVerifier(StaticKeys(keys), issuer="zikao-identity")
    principal = await verifier.verify(tokens["access_token"])
    assert principal.account_id == candidate_id
    assert principal.roles == frozenset({"candidate"})
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    assert id_number(0) not in str(claims) and ticket(0) not in str(claims)

    refreshed = await client.post(
        "/api/identity/token", json={"refresh_token": tokens["refresh_token"]}
    )
    assert refreshed.status_code == 200
    # A second tab renewing at the same moment: the same successor, not reuse.
    twin = await client.post("/api/identity/token", json={"refresh_token": tokens["refresh_token"]})
    assert twin.status_code == 200, twin.text
    assert twin.json()["refresh_token"] == refreshed.json()["refresh_token"]
    await verifier.verify(twin.json()["access_token"])
    async with service.pool.acquire() as conn:  # the grace interval has passed
        await conn.execute(
            "UPDATE identity.refresh_tokens SET used_at = used_at - interval '31 seconds'"
            " WHERE used_at IS NOT NULL"
        )
    reused = await client.post(
        "/api/identity/token", json={"refresh_token": tokens["refresh_token"]}
    )
    assert reused.status_code == 401 and error(reused)["code"] == "identity.refresh_invalid"
    successor = await client.post(
        "/api/identity/token", json={"refresh_token": refreshed.json()["refresh_token"]}
    )
    assert successor.status_code == 401, "reuse revoked the whole family"

    again = (await login(client, service, ticket(0))).json()
    out = await client.post("/api/identity/logout", json={"refresh_token": again["refresh_token"]})
    assert out.status_code == 204
    after = await client.post("/api/identity/token", json={"refresh_token": again["refresh_token"]})
    assert after.status_code == 401


async def test_registration_writes_the_event_without_the_id_number(
    client: httpx.AsyncClient, service: Identity
) -> None:
    created = await register(client, service, registration(1))
    candidate_id = created.json()["candidate_id"]
    events = await service.accounts._store.load("identity.candidate", candidate_id)
    assert [e.event_type for e in events] == ["CandidateRegistered"]
    payload = events[0].payload
    assert payload["id_number_masked"] == id_number(1)[:4] + "*" * 10 + id_number(1)[-4:]
    assert id_number(1) not in str(payload) and "13812345678" not in str(payload)
    assert payload["passed_course_codes"] == ["00015"]  # the roster's 已合格课程, for application
    async with service.pool.acquire() as conn:
        row = await conn.fetchrow("SELECT * FROM identity.candidate_accounts")
    assert row["password_hash"].startswith("$argon2id$")
    assert "13812345678" not in str(dict(row))


@pytest.mark.parametrize(
    ("changes", "status", "code"),
    [
        ({"id_number": "14010519900101123"}, 422, "identity.id_number_malformed"),
        ({"id_number": "140105199001011230"}, 422, "identity.id_number_checksum"),
        ({"name": "周八"}, 422, "identity.roster_mismatch"),
        ({"ticket_number": ticket(4)}, 422, "identity.roster_mismatch"),
        ({"ticket_number": "999999999999"}, 422, "identity.roster_mismatch"),
        ({"password": "abcdefgh"}, 422, "identity.password_weak"),
        ({"password": "Zikao19900101!"}, 422, "identity.password_weak"),
        ({"mobile": "12345"}, 422, "identity.mobile_invalid"),
    ],
)
async def test_bad_registrations_are_refused_and_write_nothing(
    client: httpx.AsyncClient, service: Identity, changes: dict[str, str], status: int, code: str
) -> None:
    response = await register(client, service, registration(2, **changes))
    assert response.status_code == status, response.text
    assert error(response)["code"] == code
    assert error(response)["message"]
    # the form can mark the field at fault; a roster mismatch does not say which (on purpose)
    at_fault = None if code == "identity.roster_mismatch" else next(iter(changes))
    assert error(response).get("field") == at_fault
    assert id_number(2) not in response.text
    async with service.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM identity.candidate_accounts") == 0
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM eventkit.events WHERE stream_type = 'identity.candidate'"
            )
            == 0
        )


async def test_concurrent_duplicate_registrations_make_one_account(
    client: httpx.AsyncClient, service: Identity
) -> None:
    # Each attempt with its own number and code: they race on the roster entry alone.
    bodies = [
        await with_code(client, service, registration(3, mobile=f"1381234560{k}")) for k in range(6)
    ]
    responses = await asyncio.gather(*(register(client, service, body) for body in bodies))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201, 409, 409, 409, 409, 409]
    assert {error(r)["code"] for r in responses if r.status_code == 409} == {
        "identity.already_registered"
    }
    async with service.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM identity.candidate_accounts") == 1
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM eventkit.events WHERE stream_type = 'identity.candidate'"
            )
            == 1
        )


async def test_login_failures_never_say_which_part_and_lock_then_release(
    client: httpx.AsyncClient, service: Identity
) -> None:
    await register(client, service, registration(0))
    unknown = await login(client, service, ticket(4))
    wrong = await login(client, service, ticket(0), password="Wrong#2026x")
    nonsense = await login(client, service, "not an id")
    for response in (unknown, wrong, nonsense):
        assert response.status_code == 401
        assert error(response) == {**error(unknown), "request_id": error(response)["request_id"]}
    for _ in range(3):
        assert (await login(client, service, ticket(0), password="Wrong#2026x")).status_code == 401
    locked = await login(client, service, ticket(0), password="Wrong#2026x")
    assert locked.status_code == 429
    assert error(locked)["code"] == "identity.login_locked"
    assert int(locked.headers["Retry-After"]) > 0
    still = await login(client, service, ticket(0))
    assert still.status_code == 429, "the right password does not open a locked account"
    async with service.pool.acquire() as conn:
        await conn.execute(
            "UPDATE identity.login_throttle SET locked_until = now() - interval '1 second'"
        )
    assert (await login(client, service, ticket(0))).status_code == 200, "the lock ends by itself"


async def test_captcha_errors(client: httpx.AsyncClient, service: Identity) -> None:
    await register(client, service, registration(0))
    captcha = await solve_captcha(client, service)
    body = {"identifier": ticket(0), "password": PASSWORD}
    wrong_answer = "".join(next(c for c in ALPHABET if c != a) for a in captcha["captcha_answer"])
    wrong = await client.post(
        "/api/identity/login", json={**body, **captcha, "captcha_answer": wrong_answer}
    )
    assert (wrong.status_code, error(wrong)["code"]) == (400, "identity.captcha_wrong")
    assert error(wrong)["field"] == "captcha_answer"
    reused = await client.post("/api/identity/login", json={**body, **captcha})
    assert (reused.status_code, error(reused)["code"]) == (400, "identity.captcha_used")
    unknown = await client.post(
        "/api/identity/login",
        json={**body, "captcha_id": str(uuid.uuid4()), "captcha_answer": "ABCD"},
    )
    assert (unknown.status_code, error(unknown)["code"]) == (400, "identity.captcha_unknown")
    fresh = await solve_captcha(client, service)
    async with service.pool.acquire() as conn:
        await conn.execute("UPDATE identity.captchas SET expires_at = now() - interval '1 second'")
    expired = await client.post("/api/identity/login", json={**body, **fresh})
    assert (expired.status_code, error(expired)["code"]) == (400, "identity.captcha_expired")


@pytest.mark.parametrize(
    ("content", "headers", "status", "code"),
    [
        (
            b'{"identifier": "\xc3\x28"}',
            {"content-type": "application/json"},
            400,
            "request.not_utf8",
        ),
        (b"{not json", {"content-type": "application/json"}, 400, "request.malformed_json"),
        (b'{"identifier": "x"}', {"content-type": "application/json"}, 422, "request.invalid"),
        (
            b'{"a": "' + b"x" * 20000 + b'"}',
            {"content-type": "application/json"},
            413,
            "request.too_large",
        ),
    ],
)
async def test_malformed_requests_get_clear_errors(
    client: httpx.AsyncClient, content: bytes, headers: dict[str, str], status: int, code: str
) -> None:
    response = await client.post("/api/identity/login", content=content, headers=headers)
    assert response.status_code == status, response.text
    assert error(response)["code"] == code


async def test_tokens_from_another_key_or_tampered_are_refused(
    client: httpx.AsyncClient, service: Identity
) -> None:
    await register(client, service, registration(0))
    token = (await login(client, service, ticket(0))).json()["access_token"]
    jwks = (await client.get("/.well-known/jwks.json")).json()
    verifier = TokenVerifier(
        StaticKeys({k["kid"]: jwt.PyJWK(k).key for k in jwks["keys"]}), issuer="zikao-identity"
    )
    forged_key = Ed25519KeyPair(jwks["keys"][0]["kid"], Ed25519KeyPair.generate("x").private_key)
    header, claims, _ = token.split(".")
    forged = jwt.encode(
        jwt.decode(token, options={"verify_signature": False}),
        forged_key.private_key,
        algorithm="EdDSA",
        headers={"kid": forged_key.kid},
    )
    for bad in (forged, f"{header}.{claims}.", token[:-4] + "AAAA"):
        with pytest.raises(AppError) as refused:
            await verifier.verify(bad)
        assert refused.value.status == 401


async def logged_in(client: httpx.AsyncClient, service: Identity, i: int = 0) -> dict[str, str]:
    """Register candidate i, log in, and return the Authorization header."""
    await register(client, service, registration(i))
    tokens = (await login(client, service, ticket(i))).json()
    return {"Authorization": f"Bearer {tokens['access_token']}"}


async def test_personal_centre_shows_the_profile_masked(
    client: httpx.AsyncClient, service: Identity
) -> None:
    auth = await logged_in(client, service)
    response = await client.get("/api/identity/me", headers=auth)
    assert response.status_code == 200, response.text
    profile = response.json()
    assert profile["name"] == NAMES[0]
    assert profile["admission_ticket_number"] == ticket(0)
    assert profile["id_number_masked"] == id_number(0)[:4] + "*" * 10 + id_number(0)[-4:]
    assert profile["mobile_masked"] == "138****5678"
    assert profile["passed_courses"] == ["00015"]
    assert profile["registration_district"] == "140105"
    assert id_number(0) not in response.text and "13812345678" not in response.text
    entries = (await client.get("/api/identity/me/entries", headers=auth)).json()
    states = {e["key"]: (e["state"], e["message"]) for e in entries}
    assert states["exemption"][0] == "open"
    assert {v for k, v in states.items() if k != "exemption"} == {("closed", "未开放")}


async def test_contact_changes_are_recorded_as_events(
    client: httpx.AsyncClient, service: Identity
) -> None:
    auth = await logged_in(client, service)
    changed = await client.patch(
        "/api/identity/me", headers=auth, json={"mobile": "13900001111", "email": "a@b.cn"}
    )
    assert changed.status_code == 200, changed.text
    assert (changed.json()["mobile_masked"], changed.json()["email"]) == ("139****1111", "a@b.cn")
    cleared = await client.patch("/api/identity/me", headers=auth, json={"email": ""})
    assert cleared.json()["email"] is None
    candidate_id = changed.json()["candidate_id"]
    events = await service.accounts._store.load("identity.candidate", candidate_id)
    assert [e.event_type for e in events] == [
        "CandidateRegistered",
        "CandidateProfileUpdated",
        "CandidateProfileUpdated",
    ]
    assert events[1].payload["mobile_masked"] == "139****1111"
    assert "13900001111" not in str(events[1].payload) and "a@b.cn" not in str(events[1].payload)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"mobile": "1390000111"}, "identity.mobile_invalid"),
        ({"email": "not-an-email"}, "identity.email_invalid"),
        ({"name": "改名"}, "request.invalid"),
    ],
)
async def test_bad_contact_changes_are_refused_and_change_nothing(
    client: httpx.AsyncClient, service: Identity, body: dict[str, str], code: str
) -> None:
    auth = await logged_in(client, service)
    response = await client.patch("/api/identity/me", headers=auth, json=body)
    assert response.status_code == 422
    assert error(response)["code"] == code
    if code != "request.invalid":
        assert error(response)["field"] == next(iter(body))
    profile = (await client.get("/api/identity/me", headers=auth)).json()
    assert profile["mobile_masked"] == "138****5678" and profile["email"] is None
    async with service.pool.acquire() as conn:
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM eventkit.events WHERE event_type = 'CandidateProfileUpdated'"
            )
            == 0
        )


@pytest.mark.parametrize(
    "header",
    [
        None,
        "Bearer not.a.token",
        "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.",
        "Basic dXNlcjpwYXNz",
    ],
)
async def test_the_personal_centre_needs_a_valid_candidate_token(
    client: httpx.AsyncClient, header: str | None
) -> None:
    headers = {"Authorization": header} if header else {}
    response = await client.get("/api/identity/me", headers=headers)
    assert response.status_code == 401
    assert response.headers.get("www-authenticate", "").startswith("Bearer")


async def test_behind_a_trusted_web_ui_the_forwarded_address_is_throttled(
    service: Identity,
) -> None:
    """The reviewer UI and the portal log people in from their own address: identity counts the
    address they forward (from trusted peers only), not theirs, so one person's failures never
    lock every user of a UI."""
    app = build_app()
    attach(app, service)
    keys: dict[str, list[str]] = {}
    for peer, forwarded in (("127.0.0.1", "198.51.100.7"), ("10.1.2.3", "198.51.100.8")):
        transport = httpx.ASGITransport(app=app, client=(peer, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://identity") as c:
            captcha = await solve_captcha(c, service)
            refused = await c.post(
                "/api/identity/login",
                json={"identifier": ticket(3), "password": "Wrong#2026x", **captcha},
                headers={"X-Forwarded-For": forwarded},
            )
            assert refused.status_code == 401
        async with service.pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT key FROM identity.login_throttle WHERE key LIKE 'ip:%' ORDER BY key"
            )
        keys[peer] = [r["key"] for r in rows]
    assert keys["127.0.0.1"] == ["ip:198.51.100.7"]  # trusted peer: the forwarded address
    assert keys["10.1.2.3"] == ["ip:10.1.2.3", "ip:198.51.100.7"]  # untrusted: its own


def hashes_started(operation: str) -> float:
    return (
        REGISTRY.get_sample_value("identity_password_hashes_total", {"operation": operation}) or 0.0
    )


async def test_a_replayed_or_unknown_registration_does_not_hash(
    client: httpx.AsyncClient, service: Identity
) -> None:
    assert (await register(client, service, registration(0))).status_code == 201
    before = hashes_started("hash"), hashes_started("verify")
    bodies = [
        await with_code(client, service, registration(0, mobile=f"1391234560{k}")) for k in range(8)
    ]
    replays = await asyncio.gather(*(register(client, service, body) for body in bodies))
    assert {r.status_code for r in replays} == {409}
    same_person_new_ticket = await register(
        client, service, registration(0, ticket_number=ticket(1))
    )
    assert same_person_new_ticket.status_code == 422, "the roster has no such pair"
    unknown = await register(client, service, registration(1, name="周八"))
    assert unknown.status_code == 422
    assert (hashes_started("hash"), hashes_started("verify")) == before


async def test_when_every_hashing_slot_stays_busy_the_answer_is_503_with_retry_after(
    identity_pool: asyncpg.Pool, service: Identity
) -> None:
    busy = wire(
        identity_pool,
        settings_for(
            service_sms_url(service), password_hash_limit=1, password_hash_wait_seconds=0.05
        ),
        CIPHER,
    )
    assert busy.passwords.limit == 1
    app = build_app()
    attach(app, busy)
    transport = httpx.ASGITransport(app=app, client=("10.1.2.3", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://identity") as c:
        async with busy.passwords.slot():  # the one slot is taken by a hash in flight
            refused = await register(c, busy, registration(0))
            assert refused.status_code == 503, refused.text
            assert error(refused)["code"] == "identity.busy"
            assert error(refused)["message"] == "系统繁忙，请稍后重试"
            assert int(refused.headers["Retry-After"]) > 0
            captcha = await solve_captcha(c, busy)
            login_refused = await c.post(
                "/api/identity/login",
                json={"identifier": ticket(0), "password": PASSWORD, **captcha},
            )
            assert login_refused.status_code == 503 and "Retry-After" in login_refused.headers
        async with identity_pool.acquire() as conn:
            assert await conn.fetchval("SELECT count(*) FROM identity.candidate_accounts") == 0
        assert (await register(c, busy, registration(0))).status_code == 201


async def test_a_full_width_password_registers_and_logs_in(
    client: httpx.AsyncClient, service: Identity
) -> None:
    full_width = "Ｚｉｋａｏ＃２０２６"
    created = await register(client, service, registration(0, password=full_width))
    assert created.status_code == 201, created.text
    assert (await login(client, service, ticket(0), password=full_width)).status_code == 200
    assert (await login(client, service, ticket(0), password=PASSWORD)).status_code == 200


@asynccontextmanager
async def client_at(service: Identity, address: str) -> AsyncIterator[httpx.AsyncClient]:
    app = build_app()
    attach(app, service)
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://identity") as c:
        yield c


async def accounts_and_events(service: Identity) -> tuple[int, int]:
    async with service.pool.acquire() as conn:
        accounts = await conn.fetchval("SELECT count(*) FROM identity.candidate_accounts")
        events = await conn.fetchval(
            "SELECT count(*) FROM eventkit.events WHERE stream_type = 'identity.candidate'"
        )
    return accounts, events


async def test_registration_needs_a_right_captcha_and_says_nothing_about_the_roster_without(
    client: httpx.AsyncClient, service: Identity
) -> None:
    missing = await client.post("/api/identity/candidates", json=registration(0))
    assert missing.status_code == 422 and error(missing)["code"] == "request.invalid"
    answers = []
    for body in (registration(0), registration(0, name="周八")):  # on the roster, and not
        body = await with_code(client, service, body)
        captcha = await solve_captcha(client, service)
        wrong = "Q" if captcha["captcha_answer"] != "QQQQ" else "W"
        answers.append(
            await client.post(
                "/api/identity/candidates",
                json={**body, **captcha, "captcha_answer": wrong * 4},
            )
        )
    for refused in answers:
        assert refused.status_code == 400, refused.text
        assert error(refused)["code"] == "identity.captcha_wrong"
        assert error(refused)["field"] == "captcha_answer"
        assert error(refused)["message"] == "验证码错误，请重新输入"
    assert await accounts_and_events(service) == (0, 0)
    spent = await solve_captcha(client, service)
    right = await with_code(client, service, registration(0))
    assert (
        await client.post("/api/identity/candidates", json={**right, **spent})
    ).status_code == 201
    other = await with_code(client, service, registration(1, mobile="13912345678"))
    reused = await client.post("/api/identity/candidates", json={**other, **spent})
    assert reused.status_code == 400 and error(reused)["code"] == "identity.captcha_used"


async def test_probing_one_roster_entry_is_locked_from_every_address(
    client: httpx.AsyncClient, service: Identity
) -> None:
    for i in range(10):  # ten guesses at ticket(0)'s name, each from another address
        async with client_at(service, f"10.20.0.{i + 1}") as other:
            guess = await register(other, service, registration(0, name=f"周{i}"))
        expected = 422 if i < 9 else 429
        assert guess.status_code == expected, (i, guess.text)
    assert error(guess)["code"] == "identity.registration_locked"
    assert "分钟后再试" in error(guess)["message"]
    assert int(guess.headers["Retry-After"]) > 60
    right = await register(client, service, registration(0))
    assert right.status_code == 429, "while the entry is locked, not even the right data"
    assert (await register(client, service, registration(1))).status_code == 201, "others go on"
    async with service.pool.acquire() as conn:
        keys = await conn.fetch("SELECT key FROM identity.login_throttle")
        await conn.execute(
            "UPDATE identity.login_throttle SET locked_until = now() - interval '1s'"
        )
    assert not [r for r in keys if r["key"].startswith(("acct:", "ip:"))], "not the login's"
    assert id_number(0) not in str([r["key"] for r in keys])
    assert (await register(client, service, registration(0))).status_code == 201, "ends by itself"
    assert await accounts_and_events(service) == (2, 2)


async def test_walking_the_roster_from_one_address_is_locked(
    client: httpx.AsyncClient, service: Identity
) -> None:
    statuses = []
    for i in range(20):  # twenty made-up ticket numbers from one address
        probe = await register(client, service, registration(0, ticket_number=f"0201181{i:05d}"))
        statuses.append(probe.status_code)
    assert statuses == [422] * 19 + [429]
    assert (await register(client, service, registration(0))).status_code == 429
    async with client_at(service, "10.30.0.1") as elsewhere:
        assert (await register(elsewhere, service, registration(0))).status_code == 201
        login_elsewhere = await login(elsewhere, service, ticket(0))
    assert login_elsewhere.status_code == 200
    assert (await login(client, service, ticket(0))).status_code == 200, "logins count apart"


SMS_MOBILE = "13812345678"


async def send_code(client: httpx.AsyncClient, service: Identity, **changes: Any) -> httpx.Response:
    captcha = await solve_captcha(client, service)
    body = {"mobile": SMS_MOBILE, "purpose": "register", **captcha, **changes}
    return await client.post("/api/identity/sms-codes", json=body)


async def test_a_code_is_sent_in_chinese_and_registers_once(
    client: httpx.AsyncClient, service: Identity, sms_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    sent = await send_code(client, service)
    assert sent.status_code == 202, sent.text
    assert sent.json() == {"mobile_masked": "138****5678", "expires_in": 300}
    [message, *_] = await sms_messages(sms_url, SMS_MOBILE)
    code = message["params"]["code"]
    assert len(code) == 6 and code.isdigit()
    assert message["text"] == f"【自考免考】您的注册验证码为{code}，5分钟内有效。"
    async with service.pool.acquire() as conn:
        stored = await conn.fetch("SELECT * FROM identity.sms_codes")
    assert len(stored) == 1 and await accounts_and_events(service) == (0, 0)
    assert SMS_MOBILE not in str(dict(stored[0])) and code not in str(dict(stored[0]))
    created = await register(client, service, registration(0, sms_code=code))
    assert created.status_code == 201, created.text
    reused = await register(client, service, registration(1, sms_code=code))
    assert reused.status_code == 400
    assert error(reused)["code"] == "identity.sms_code_used"
    assert error(reused)["field"] == "sms_code"
    assert error(reused)["message"] == "短信验证码已使用，请重新获取"
    assert await accounts_and_events(service) == (1, 1)
    async with service.pool.acquire() as conn:
        payloads = await conn.fetch("SELECT payload::text FROM eventkit.events")
    assert all(SMS_MOBILE not in r["payload"] for r in payloads)
    assert SMS_MOBILE not in caplog.text


@pytest.mark.parametrize(
    ("problem", "code", "message"),
    [
        ("wrong", "identity.sms_code_wrong", "短信验证码错误，请重新输入"),
        ("expired", "identity.sms_code_expired", "短信验证码已过期，请重新获取"),
        ("other_mobile", "identity.sms_code_missing", "请先获取短信验证码"),
        ("never_sent", "identity.sms_code_missing", "请先获取短信验证码"),
        ("superseded", "identity.sms_code_wrong", "短信验证码错误，请重新输入"),
    ],
)
async def test_bad_codes_are_refused_and_write_nothing(
    client: httpx.AsyncClient, service: Identity, sms_url: str, problem: str, code: str,
    message: str,
) -> None:  # fmt: skip
    body = registration(0)
    if problem != "never_sent":
        typed = await request_sms_code(client, service, sms_url, "13900001111")
        body["mobile"] = "13900001111"
    if problem == "wrong":
        typed = f"{(int(typed) + 1) % 1_000_000:06d}"
    elif problem == "expired":
        async with service.pool.acquire() as conn:
            await conn.execute("UPDATE identity.sms_codes SET expires_at = now() - interval '1s'")
    elif problem == "other_mobile":
        body["mobile"] = "13700002222"  # the code went to 13900001111
    elif problem == "never_sent":
        typed = "123456"
    elif problem == "superseded":
        await request_sms_code(client, service, sms_url, "13900001111")  # a newer one counts
    refused = await register(client, service, {**body, "sms_code": typed})
    assert refused.status_code == 400, refused.text
    assert (error(refused)["code"], error(refused)["message"]) == (code, message)
    assert error(refused)["field"] == "sms_code"
    assert await accounts_and_events(service) == (0, 0)


async def test_a_code_takes_a_few_tries_only(
    client: httpx.AsyncClient, service: Identity, sms_url: str
) -> None:
    code = await request_sms_code(client, service, sms_url, SMS_MOBILE)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    codes = []
    for _ in range(MAX_ATTEMPTS):
        refused = await register(client, service, registration(0, sms_code=wrong))
        codes.append(error(refused)["code"])
    assert codes == ["identity.sms_code_wrong"] * (MAX_ATTEMPTS - 1) + [
        "identity.sms_code_exhausted"
    ]
    right = await register(client, service, registration(0, sms_code=code))
    assert right.status_code == 400 and error(right)["code"] == "identity.sms_code_exhausted"
    assert (await register(client, service, registration(0))).status_code == 201, "a new code"


async def test_a_roster_refusal_does_not_spend_the_code(
    client: httpx.AsyncClient, service: Identity
) -> None:
    body = await with_code(client, service, registration(0))
    assert (await register(client, service, {**body, "name": "周八"})).status_code == 422
    assert (await register(client, service, body)).status_code == 201


async def test_sends_are_throttled_per_mobile_and_per_address(
    identity_pool: Any, service: Identity, sms_url: str
) -> None:
    limited = wire(
        identity_pool,
        settings_for(sms_url, sms_sends_per_mobile=3, sms_sends_per_address=5),
        CIPHER,
    )
    async with client_at(limited, "10.40.0.1") as one:
        statuses = [(await send_code(one, limited)).status_code for _ in range(4)]
        assert statuses == [202, 202, 202, 429]
        locked = await send_code(one, limited)
        assert error(locked)["code"] == "identity.sms_send_locked"
        assert "分钟后再试" in error(locked)["message"]
        assert int(locked.headers["Retry-After"]) > 60
        others = [
            (await send_code(one, limited, mobile=f"1391111000{k}")).status_code for k in range(3)
        ]
        assert others == [202, 202, 429], "the address's five sends are used up"
    async with client_at(limited, "10.40.0.2") as elsewhere:
        assert (await send_code(elsewhere, limited)).status_code == 429, "the number is locked"
        assert (await send_code(elsewhere, limited, mobile="13922220000")).status_code == 202
    assert len(await sms_messages(sms_url, SMS_MOBILE)) >= 3
    async with identity_pool.acquire() as conn:
        keys = [r["key"] for r in await conn.fetch("SELECT key FROM identity.login_throttle")]
    assert all(k.startswith("sms:") for k in keys) and SMS_MOBILE not in str(keys)
    await close_sms(limited)


async def test_the_answer_does_not_say_whether_an_account_exists(
    client: httpx.AsyncClient, service: Identity
) -> None:
    assert (await register(client, service, registration(0))).status_code == 201
    registered = await send_code(client, service)
    fresh = await send_code(client, service, mobile="13700009999")
    assert (registered.status_code, fresh.status_code) == (202, 202)
    assert registered.json().keys() == fresh.json().keys()


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"mobile": "12345"}, "mobile"),
        ({"mobile": "1381234\x005678"}, "mobile"),
        ({"purpose": "login"}, "purpose"),
        ({"purpose": None}, "purpose"),
        ({"mobile": None}, "mobile"),
        ({"captcha_answer": "AB\x07C"}, "captcha_answer"),
        ({"extra": "x"}, "extra"),
    ],
)
async def test_bad_send_requests_are_refused(
    client: httpx.AsyncClient, service: Identity, sms_url: str, changes: dict[str, Any],
    field: str,
) -> None:  # fmt: skip
    captcha = await solve_captcha(client, service)
    body = {"mobile": SMS_MOBILE, "purpose": "register", **captcha, **changes}
    body = {k: v for k, v in body.items() if v is not None}
    refused = await client.post("/api/identity/sms-codes", json=body)
    assert 400 <= refused.status_code < 500, refused.text
    assert field in refused.text
    assert await sms_messages(sms_url, "12345") == []


async def test_registration_without_a_code_or_with_control_characters_is_refused(
    client: httpx.AsyncClient, service: Identity
) -> None:
    body = await with_code(client, service, registration(0))
    for changes in ({"sms_code": None}, {"sms_code": "12\x003456"}, {"sms_code": ""}):
        captcha = await solve_captcha(client, service)
        sent = {k: v for k, v in {**body, **captcha, **changes}.items() if v is not None}
        refused = await client.post("/api/identity/candidates", json=sent)
        assert refused.status_code == 422, refused.text
        assert error(refused)["code"] == "request.invalid" and "sms_code" in refused.text
    assert await accounts_and_events(service) == (0, 0)


async def test_a_gateway_away_answers_503_with_retry_after(
    identity_pool: Any, service: Identity, sms_url: str
) -> None:
    down = wire(
        identity_pool,
        settings_for(f"http://127.0.0.1:{free_port()}", sms_timeout_seconds=1),
        CIPHER,
    )
    async with client_at(down, "10.50.0.1") as c:
        refused = await send_code(c, down)
    assert refused.status_code == 503, refused.text
    assert error(refused)["code"] == "identity.sms_unavailable"
    assert error(refused)["message"] == "短信服务暂时不可用，请稍后重试"
    assert int(refused.headers["Retry-After"]) > 0
    async with httpx.AsyncClient(base_url=sms_url) as http:
        await http.post("/_sandbox/faults", json={"mode": "error", "count": 1})
        async with client_at(service, "10.50.0.2") as c:
            failed = await send_code(c, service, mobile="13733334444")
            assert failed.status_code == 503 and "Retry-After" in failed.headers
            await http.post("/_sandbox/faults", json={"mode": "garbage", "count": 1})
            garbage = await send_code(c, service, mobile="13733334444")
            assert garbage.status_code == 503
            assert (await send_code(c, service, mobile="13733334444")).status_code == 202
    async with identity_pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM identity.sms_codes") == 1, "no dead codes"
    await close_sms(down)


async def test_a_slow_gateway_times_out_into_a_503(
    identity_pool: Any, service: Identity, sms_url: str
) -> None:
    slow = wire(identity_pool, settings_for(sms_url, sms_timeout_seconds=0.5), CIPHER)
    async with httpx.AsyncClient(base_url=sms_url) as http:
        await http.post("/_sandbox/faults", json={"mode": "timeout", "count": 1})
        async with client_at(slow, "10.60.0.1") as c:
            refused = await send_code(c, slow)
        await http.post("/_sandbox/faults", json={"mode": "none", "count": 0})
    assert refused.status_code == 503 and "Retry-After" in refused.headers
    await close_sms(slow)


async def test_the_code_is_read_from_the_sandbox(
    client: httpx.AsyncClient, service: Identity, sms_url: str
) -> None:
    assert (await send_code(client, service)).status_code == 202
    assert len(await latest_sms_code(sms_url, SMS_MOBILE)) == 6
    app = build_app()
    attach(app, service)
    assert "/api/identity/sms-codes" in app.openapi()["paths"]
    documented = app.openapi()["paths"]["/api/identity/sms-codes"]["post"]["responses"]
    assert {"202", "429", "503"} <= documented.keys()


async def close_sms(identity: Identity) -> None:
    """Close a second wiring's gateway client (its pool is the test's)."""
    sender = identity.sms_sender
    assert isinstance(sender, HttpSmsSender)
    await sender.aclose()
