"""Rotating refresh tokens, stored hashed; presenting a spent one revokes its whole family.

Except for a short grace interval after a rotation: two requests of one session (two tabs)
renewing at the same moment both present the same token, and the later one gets the same
successor (idempotent) instead of counting as reuse. The successor is kept for that, sealed
(AES-GCM) with a key derived from the rotated token, so only whoever presents that token can open
it, and a copy of the table alone opens nothing. Reuse after the grace still ends the family.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Literal

import asyncpg
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from eventkit.db import Conn

AccountKind = Literal["candidate", "staff"]
DEFAULT_GRACE = timedelta(seconds=30)


class RefreshSettings(BaseSettings):
    """IDENTITY_REFRESH_GRACE_SECONDS: how long a just-rotated refresh token still yields its
    successor (0: never; every second use is reuse)."""

    model_config = SettingsConfigDict(env_prefix="IDENTITY_", extra="ignore", frozen=True)

    refresh_grace_seconds: float = Field(
        default=DEFAULT_GRACE.total_seconds(),
        ge=0,
        le=120,
        description="seconds in which presenting a just-rotated refresh token again returns the "
        "same successor instead of revoking the family (concurrent renewals of one session)",
    )

    @property
    def grace(self) -> timedelta:
        """The grace interval."""
        return timedelta(seconds=self.refresh_grace_seconds)


class RefreshProblem(StrEnum):
    """Why a refresh token was not accepted."""

    UNKNOWN = "unknown"
    EXPIRED = "expired"
    REVOKED = "revoked"
    REUSED = "reused"


@dataclass(frozen=True)
class IssuedRefresh:
    """A refresh token to hand to the client (shown once; only its hash is kept)."""

    token: str
    family_id: uuid.UUID
    account_id: str
    account_kind: AccountKind
    expires_in: int


@dataclass(frozen=True)
class RefreshRefused(Exception):
    """The refresh token cannot be used; `problem` says why (for logs, not for the client)."""

    problem: RefreshProblem


def _hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _new_token() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()


def _successor_key(token: str) -> bytes:
    # Not the stored hash (sha256 of the token alone): the table never holds this key.
    return hashlib.sha256(b"identity.refresh/successor|" + token.encode()).digest()


def _seal_successor(token: str, row_id: uuid.UUID, successor: str) -> bytes:
    nonce = secrets.token_bytes(12)
    return nonce + AESGCM(_successor_key(token)).encrypt(nonce, successor.encode(), row_id.bytes)


def _open_successor(token: str, row_id: uuid.UUID, sealed: bytes) -> str | None:
    try:
        plain = AESGCM(_successor_key(token)).decrypt(sealed[:12], sealed[12:], row_id.bytes)
    except (InvalidTag, ValueError):
        return None
    return plain.decode()


class RefreshTokens:
    """Issues, rotates and revokes refresh tokens."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        ttl: timedelta = timedelta(days=7),
        *,
        grace: timedelta = DEFAULT_GRACE,
    ) -> None:
        self._pool = pool
        self._ttl = ttl
        self._grace = grace

    async def issue(self, account_id: str, kind: AccountKind) -> IssuedRefresh:
        """Start a new family (a login)."""
        return await self._insert(self._pool, uuid.uuid4(), account_id, kind)

    async def _insert(
        self,
        conn: asyncpg.Pool | Conn,
        family_id: uuid.UUID,
        account_id: str,
        kind: AccountKind,
    ) -> IssuedRefresh:
        token = _new_token()
        await conn.execute(
            "INSERT INTO identity.refresh_tokens (id, family_id, account_id, account_kind,"
            " token_hash, expires_at) VALUES ($1, $2, $3, $4, $5, now() + $6)",
            uuid.uuid4(),
            family_id,
            account_id,
            kind,
            _hash(token),
            self._ttl,
        )
        return IssuedRefresh(token, family_id, account_id, kind, int(self._ttl.total_seconds()))

    async def rotate(self, token: str) -> IssuedRefresh:
        """Spend `token` and return its successor; a reused token revokes the family, unless it
        was rotated less than the grace interval ago: then the same successor again."""
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "SELECT id, family_id, account_id, account_kind, used_at, revoked_at,"
                " successor_sealed, expires_at <= now() AS expired,"
                " used_at > now() - $2::interval AS in_grace"
                " FROM identity.refresh_tokens WHERE token_hash = $1 FOR UPDATE",
                _hash(token),
                self._grace,
            )
            if row is None:
                raise RefreshRefused(RefreshProblem.UNKNOWN)
            if row["revoked_at"] is not None:
                raise RefreshRefused(RefreshProblem.REVOKED)
            if row["used_at"] is not None:
                again = await self._successor_again(conn, token, row)
                if again is not None:
                    return again
                await self._revoke_family(conn, row["family_id"])
                problem = RefreshProblem.REUSED
            elif row["expired"]:
                problem = RefreshProblem.EXPIRED
            else:
                successor = await self._insert(
                    conn, row["family_id"], row["account_id"], row["account_kind"]
                )
                sealed = (
                    _seal_successor(token, row["id"], successor.token)
                    if self._grace > timedelta(0)
                    else None
                )
                await conn.execute(
                    "UPDATE identity.refresh_tokens SET used_at = now(), successor_sealed = $2"
                    " WHERE id = $1",
                    row["id"],
                    sealed,
                )
                return successor
        # Outside the transaction block so the family's revocation is committed, not rolled back.
        raise RefreshRefused(problem)

    async def _successor_again(
        self, conn: Conn, token: str, row: asyncpg.Record
    ) -> IssuedRefresh | None:
        """The successor a rotation of `token` within the grace interval handed out, while it is
        live; None otherwise (reuse)."""
        if not row["in_grace"] or row["successor_sealed"] is None:
            return None
        successor = _open_successor(token, row["id"], bytes(row["successor_sealed"]))
        if successor is None:
            return None
        left = await conn.fetchval(
            "SELECT extract(epoch FROM expires_at - now()) FROM identity.refresh_tokens"
            " WHERE token_hash = $1 AND revoked_at IS NULL AND expires_at > now()",
            _hash(successor),
        )
        if left is None:
            return None
        return IssuedRefresh(
            successor, row["family_id"], row["account_id"], row["account_kind"], int(left)
        )

    async def revoke(self, token: str) -> bool:
        """Log out: revoke the token's whole family; False when the token is unknown."""
        async with self._pool.acquire() as conn, conn.transaction():
            family = await conn.fetchval(
                "SELECT family_id FROM identity.refresh_tokens WHERE token_hash = $1", _hash(token)
            )
            if family is None:
                return False
            await self._revoke_family(conn, family)
            return True

    async def revoke_account(self, account_id: str) -> int:
        """Revoke every live token of an account (password change, lockout by ops)."""
        async with self._pool.acquire() as conn:
            result = await conn.execute(
                "UPDATE identity.refresh_tokens SET revoked_at = now()"
                " WHERE account_id = $1 AND revoked_at IS NULL",
                account_id,
            )
        return int(result.split()[-1])

    @staticmethod
    async def _revoke_family(conn: Conn, family: uuid.UUID) -> None:
        await conn.execute(
            "UPDATE identity.refresh_tokens SET revoked_at = now()"
            " WHERE family_id = $1 AND revoked_at IS NULL",
            family,
        )
