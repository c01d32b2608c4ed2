"""Staff accounts (工作人员账号): created by ops, logging in with username and password."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable

import asyncpg

from contracts.identity import STAFF_STREAM, StaffAccountCreated
from eventkit.envelope import Actor, Metadata, NewEvent
from eventkit.store import EventStore
from identity_service.adapters.captcha import CaptchaStore
from identity_service.adapters.passwords import Passwords
from identity_service.adapters.throttle import LoginThrottle
from identity_service.domain.password import check_password
from identity_service.domain.staff import (
    USERNAME,
    StaffPrincipal,
    StaffUsernameTaken,
    check_staff,
    normalise_username,
)
from identity_service.service_layer.accounts import LoginFailed, LoginLocked, check_captcha

STAFF_STREAM_TYPE = STAFF_STREAM.stream_type  # "identity.staff"


def throttle_key(username: str) -> str:
    """The throttle key of a typed username; text that cannot be a username is kept hashed."""
    normalised = normalise_username(username)
    if USERNAME.match(normalised):
        return f"staff:{normalised}"
    return f"staff:other:{hashlib.sha256(normalised.encode()).hexdigest()[:32]}"


def _username_taken(username: str) -> StaffUsernameTaken:
    return StaffUsernameTaken(f"用户名 {username} 已被使用", "a staff account has this username")


def _principal(row: asyncpg.Record) -> StaffPrincipal:
    return StaffPrincipal(
        staff_id=str(row["staff_id"]),
        roles=tuple(row["roles"]),
        confirmation_points=tuple(row["confirmation_points"]),
    )


class StaffAccounts:
    """Creates staff accounts (ops) and checks staff logins."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        store: EventStore,
        captchas: CaptchaStore,
        throttle: LoginThrottle,
        passwords: Passwords,
    ) -> None:
        self._pool = pool
        self._store = store
        self._captchas = captchas
        self._throttle = throttle
        self._passwords = passwords

    async def create(
        self,
        *,
        username: str,
        display_name: str,
        roles: Iterable[str],
        confirmation_points: Iterable[str],
        password: str,
        created_by: str,
    ) -> uuid.UUID:
        """Create the account and its StaffAccountCreated event together; the new staff id."""
        profile = check_staff(username, display_name, roles, confirmation_points)
        checked_password = check_password(password, [profile.username])
        async with self._pool.acquire() as conn:  # a taken name costs no password hash
            taken = await conn.fetchval(
                "SELECT true FROM identity.staff_accounts WHERE username = $1", profile.username
            )
        if taken:
            raise _username_taken(profile.username)
        password_hash = await self._passwords.hash(checked_password)
        metadata = Metadata(actor=Actor(kind="ops", id=created_by))
        staff_id = uuid.uuid4()
        event = StaffAccountCreated(
            staff_id=staff_id,
            username=profile.username,
            display_name=profile.display_name,
            roles=list(profile.roles),
            confirmation_point_ids=list(profile.confirmation_points),
        )
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                await conn.execute(
                    "INSERT INTO identity.staff_accounts (staff_id, username, display_name, roles,"
                    " confirmation_points, password_hash, created_by)"
                    " VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    staff_id,
                    profile.username,
                    profile.display_name,
                    [role.value for role in profile.roles],
                    list(profile.confirmation_points),
                    password_hash,
                    created_by,
                )
                await self._store.append(
                    STAFF_STREAM_TYPE,
                    str(staff_id),
                    0,
                    [NewEvent.of(event)],
                    metadata,
                    conn=conn,
                )
        except asyncpg.UniqueViolationError as exc:  # a concurrent create won the race
            raise _username_taken(profile.username) from exc
        return staff_id

    async def login(
        self,
        username: str,
        password: str,
        captcha_id: uuid.UUID,
        captcha_answer: str,
        client: str,
    ) -> StaffPrincipal:
        """The staff principal when username, password and captcha are right; else an error.

        Unknown, wrong and disabled accounts fail alike (same error, same password-hash cost).
        """
        key = throttle_key(username)
        lock = await self._throttle.lock_in_force(key, client)
        if lock is not None:
            raise LoginLocked(lock.seconds_left)
        await check_captcha(self._captchas, captcha_id, captcha_answer)
        row = None
        if not key.startswith("staff:other:"):
            async with self._pool.acquire() as conn:
                row = await conn.fetchrow(
                    "SELECT staff_id, roles, confirmation_points, password_hash, disabled_at"
                    " FROM identity.staff_accounts WHERE username = $1",
                    normalise_username(username),
                )
        stored = None if row is None else row["password_hash"]
        matches = await self._passwords.verify(stored, password)
        if not matches or row is None or row["disabled_at"] is not None:
            lock = await self._throttle.record_failure(key, client)
            if lock is not None:
                raise LoginLocked(lock.seconds_left)
            raise LoginFailed("账号或密码错误", "wrong username or password")
        await self._throttle.record_success(key)
        return _principal(row)

    async def current(self, staff_id: str) -> StaffPrincipal | None:
        """The account's roles and confirmation points now; None when missing or disabled."""
        try:
            parsed = uuid.UUID(staff_id)
        except ValueError:
            return None
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT staff_id, roles, confirmation_points FROM identity.staff_accounts"
                " WHERE staff_id = $1 AND disabled_at IS NULL",
                parsed,
            )
        return None if row is None else _principal(row)
