"""Staff accounts on a real PostgreSQL: creation, login, tokens with roles and cps, refresh."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import httpx
import jwt
import pytest
from prometheus_client import REGISTRY

from identity_service.adapters.pii import PiiCipher
from identity_service.bootstrap import Identity, wire
from identity_service.domain.errors import DomainError
from identity_service.domain.password import WeakPassword
from identity_service.domain.staff import StaffConfirmationPointsInvalid, StaffUsernameTaken
from identity_service.service_layer.accounts import CaptchaRefused, LoginFailed, LoginLocked
from identity_service.service_layer.tokens import RefreshInvalid
from identity_service.settings import IdentitySettings
from servicekit.auth import StaticKeys, TokenVerifier

pytestmark = pytest.mark.integration

CIPHER = PiiCipher({"t1": b"k" * 32}, "t1", b"h" * 32)
PASSWORD = "Shenhe#2026"
ANSWER = "ACDE"
CLIENT = "10.9.8.7"


@pytest.fixture
async def service(identity_pool: asyncpg.Pool) -> Identity:
    # Concurrent hashes here wait for a slot as long as a loaded test machine needs; the 503
    # after a short wait is tested on its own.
    identity = wire(identity_pool, IdentitySettings(password_hash_wait_seconds=30), CIPHER)
    await identity.keys.ensure_key()
    return identity


async def captcha(service: Identity) -> uuid.UUID:
    """A fresh captcha whose answer is ANSWER (its stored keyed hash is replaced; tests only)."""
    issued = await service.captchas.issue()
    async with service.pool.acquire() as conn:
        await conn.execute(
            "UPDATE identity.captchas SET answer_hash = $2 WHERE id = $1",
            issued.captcha_id,
            service.captchas._hash(issued.captcha_id, ANSWER),
        )
    return issued.captcha_id


async def create(
    service: Identity, username: str = "xiaodian.reviewer1", **changes: Any
) -> uuid.UUID:
    fields: dict[str, Any] = {
        "username": username,
        "display_name": "小店区确认点 审核员一",
        "roles": ["reviewer"],
        "confirmation_points": ["140105", "140106"],
        "password": PASSWORD,
        "created_by": "zhang.san",
        **changes,
    }
    return await service.staff.create(**fields)


async def login(service: Identity, username: str, password: str = PASSWORD) -> Any:
    return await service.staff.login(username, password, await captcha(service), ANSWER, CLIENT)


async def counts(service: Identity) -> tuple[int, int]:
    async with service.pool.acquire() as conn:
        accounts = await conn.fetchval("SELECT count(*) FROM identity.staff_accounts")
        events = await conn.fetchval(
            "SELECT count(*) FROM eventkit.events WHERE stream_type = 'identity.staff'"
        )
    return accounts, events


async def verifier(client: httpx.AsyncClient) -> TokenVerifier:
    jwks = (await client.get("/.well-known/jwks.json")).json()
    keys = {k["kid"]: jwt.PyJWK(k).key for k in jwks["keys"]}
    return TokenVerifier(StaticKeys(keys), issuer="zikao-identity")


async def test_create_writes_the_account_and_its_event_without_secrets(service: Identity) -> None:
    staff_id = await create(service, "XiaoDian.Reviewer1", confirmation_points=["140106", "140105"])
    events = await service.staff._store.load("identity.staff", str(staff_id))
    assert [e.event_type for e in events] == ["StaffAccountCreated"]
    assert events[0].payload == {
        "staff_id": str(staff_id),
        "username": "xiaodian.reviewer1",
        "display_name": "小店区确认点 审核员一",
        "roles": ["reviewer"],
        "confirmation_point_ids": ["140105", "140106"],
    }
    assert events[0].actor.kind == "ops" and events[0].actor.id == "zhang.san"
    async with service.pool.acquire() as conn:
        row = await conn.fetchrow("SELECT * FROM identity.staff_accounts")
        raw = await conn.fetchval("SELECT payload::text FROM eventkit.events")
    assert row["password_hash"].startswith("$argon2id$")
    assert row["created_by"] == "zhang.san" and row["disabled_at"] is None
    assert "argon2" not in raw and PASSWORD not in raw


async def test_a_duplicate_username_is_refused_and_writes_nothing(service: Identity) -> None:
    await create(service, "reviewer1")
    with pytest.raises(StaffUsernameTaken) as taken:
        await create(service, "Reviewer1", display_name="另一人")
    assert taken.value.status == 409 and taken.value.code == "identity.staff_username_taken"
    assert await counts(service) == (1, 1)


async def test_concurrent_creates_of_one_username_make_one_account(service: Identity) -> None:
    results = await asyncio.gather(
        *(create(service, "same.name") for _ in range(5)), return_exceptions=True
    )
    assert sum(isinstance(r, uuid.UUID) for r in results) == 1
    assert sum(isinstance(r, StaffUsernameTaken) for r in results) == 4
    assert await counts(service) == (1, 1)


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"password": "Reviewer1#x"}, WeakPassword),
        ({"password": "short"}, WeakPassword),
        ({"roles": ["senior_reviewer"]}, StaffConfirmationPointsInvalid),
        ({"confirmation_points": []}, StaffConfirmationPointsInvalid),
    ],
)
async def test_bad_creates_write_nothing(
    service: Identity, changes: dict[str, Any], error: type[DomainError]
) -> None:
    with pytest.raises(error):
        await create(service, "reviewer1", **changes)
    assert await counts(service) == (0, 0)


async def test_login_returns_the_principal(service: Identity) -> None:
    staff_id = await create(service, "reviewer1")
    senior = await create(service, "senior1", roles=["senior_reviewer"], confirmation_points=[])
    principal = await login(service, " REVIEWER1 ")
    assert principal.staff_id == str(staff_id)
    assert principal.roles == ("reviewer",)
    assert principal.confirmation_points == ("140105", "140106")
    other = await login(service, "senior1")
    assert (other.staff_id, other.roles, other.confirmation_points) == (
        str(senior),
        ("senior_reviewer",),
        (),
    )


async def test_login_failures_are_alike_and_lock(service: Identity) -> None:
    await create(service, "reviewer1")
    disabled = await create(service, "gone1")
    async with service.pool.acquire() as conn:
        await conn.execute(
            "UPDATE identity.staff_accounts SET disabled_at = now() WHERE staff_id = $1", disabled
        )
    failures = []
    for username, password in (
        ("nobody", PASSWORD),
        ("reviewer1", "Wrong#2026x"),
        ("gone1", PASSWORD),
    ):
        with pytest.raises(LoginFailed) as failed:
            await login(service, username, password)
        failures.append((failed.value.code, failed.value.message, failed.value.status))
    assert len(set(failures)) == 1 and failures[0][:2] == (
        "identity.login_failed",
        "账号或密码错误",
    )
    with pytest.raises(CaptchaRefused):
        await service.staff.login("reviewer1", PASSWORD, await captcha(service), "XXXX", CLIENT)
    for _ in range(3):
        with pytest.raises(LoginFailed):
            await login(service, "reviewer1", "Wrong#2026x")
    with pytest.raises(LoginLocked):
        await login(service, "reviewer1", "Wrong#2026x")
    with pytest.raises(LoginLocked):
        await login(service, "Reviewer1")  # the right password does not open a locked account
    async with service.pool.acquire() as conn:
        await conn.execute(
            "UPDATE identity.login_throttle SET locked_until = now() - interval '1 second'"
        )
    assert (await login(service, "reviewer1")).roles == ("reviewer",)


async def test_http_login_gives_a_staff_token_with_roles_and_cps(
    service: Identity, client: httpx.AsyncClient
) -> None:
    staff_id = await create(service, "reviewer1")
    body = {"username": "reviewer1", "password": PASSWORD, "captcha_answer": ANSWER}
    response = await client.post(
        "/api/identity/staff/login", json={**body, "captcha_id": str(await captcha(service))}
    )
    assert response.status_code == 200, response.text
    tokens = response.json()
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] > 0
    principal = await (await verifier(client)).verify(tokens["access_token"])
    assert principal.account_id == str(staff_id) and principal.is_staff
    assert principal.roles == frozenset({"reviewer"})
    assert principal.confirmation_points == frozenset({"140105", "140106"})
    assert principal.may_act_for("140105") and not principal.may_act_for("140107")

    wrong = await client.post(
        "/api/identity/staff/login",
        json={**body, "password": "Wrong#2026x", "captcha_id": str(await captcha(service))},
    )
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "identity.login_failed"
    extra = await client.post(
        "/api/identity/staff/login",
        json={**body, "captcha_id": str(uuid.uuid4()), "role": "ops"},
    )
    assert extra.status_code == 422
    too_long = await client.post(
        "/api/identity/staff/login",
        json={**body, "username": "a" * 65, "captcha_id": str(uuid.uuid4())},
    )
    assert too_long.status_code == 422


async def test_staff_refresh_picks_up_current_points_and_stops_when_disabled(
    service: Identity, client: httpx.AsyncClient
) -> None:
    staff_id = await create(service, "reviewer1")
    principal = await login(service, "reviewer1")
    pair = await service.tokens.for_staff(
        principal.staff_id, principal.roles, principal.confirmation_points
    )
    async with service.pool.acquire() as conn:
        await conn.execute(
            "UPDATE identity.staff_accounts SET confirmation_points = '{140107}'"
            " WHERE staff_id = $1",
            staff_id,
        )
    refreshed = await client.post("/api/identity/token", json={"refresh_token": pair.refresh_token})
    assert refreshed.status_code == 200, refreshed.text
    check = await verifier(client)
    renewed = await check.verify(refreshed.json()["access_token"])
    assert renewed.account_id == str(staff_id) and renewed.is_staff
    assert renewed.confirmation_points == frozenset({"140107"})
    assert renewed.roles == frozenset({"reviewer"})

    async with service.pool.acquire() as conn:
        await conn.execute(
            "UPDATE identity.staff_accounts SET disabled_at = now() WHERE staff_id = $1", staff_id
        )
    with pytest.raises(RefreshInvalid):
        await service.tokens.rotate(refreshed.json()["refresh_token"])
    async with service.pool.acquire() as conn:
        live = await conn.fetchval(
            "SELECT count(*) FROM identity.refresh_tokens"
            " WHERE account_id = $1 AND revoked_at IS NULL",
            str(staff_id),
        )
    assert live == 0, "a disabled account's refresh family ends"


async def test_a_deleted_staff_account_cannot_refresh(service: Identity) -> None:
    pair = await service.tokens.for_staff(uuid.uuid4(), ["ops"], [])
    with pytest.raises(RefreshInvalid):
        await service.tokens.rotate(pair.refresh_token)


async def test_a_full_width_password_logs_in_as_typed_and_as_half_width(service: Identity) -> None:
    staff_id = await create(service, "reviewer1", password="Ｓｈｅｎｈｅ＃２０２６")
    assert (await login(service, "reviewer1", "Ｓｈｅｎｈｅ＃２０２６")).staff_id == str(staff_id)
    assert (await login(service, "reviewer1", PASSWORD)).staff_id == str(staff_id)


async def test_a_taken_username_is_refused_before_any_password_hash(service: Identity) -> None:
    await create(service, "reviewer1")
    started = REGISTRY.get_sample_value("identity_password_hashes_total", {"operation": "hash"})
    with pytest.raises(StaffUsernameTaken):
        await create(service, "Reviewer1", display_name="另一人")
    again = REGISTRY.get_sample_value("identity_password_hashes_total", {"operation": "hash"})
    assert again == started
