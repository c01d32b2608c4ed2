"""Rotating refresh tokens, stored hashed; presenting a spent one revokes its whole family."""

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

from eventkit.db import Conn

AccountKind = Literal["candidate", "staff"]


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


class RefreshTokens:
    """Issues, rotates and revokes refresh tokens."""

    def __init__(self, pool: asyncpg.Pool, ttl: timedelta = timedelta(days=7)) -> None:
        self._pool = pool
        self._ttl = ttl

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
        """Spend `token` and return its successor; a reused token revokes the family."""
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "SELECT id, family_id, account_id, account_kind, used_at, revoked_at,"
                " expires_at <= now() AS expired FROM identity.refresh_tokens WHERE token_hash = $1"
                " FOR UPDATE",
                _hash(token),
            )
            if row is None:
                raise RefreshRefused(RefreshProblem.UNKNOWN)
            if row["revoked_at"] is not None:
                raise RefreshRefused(RefreshProblem.REVOKED)
            if row["used_at"] is not None:
                await self._revoke_family(conn, row["family_id"])
                problem = RefreshProblem.REUSED
            elif row["expired"]:
                problem = RefreshProblem.EXPIRED
            else:
                await conn.execute(
                    "UPDATE identity.refresh_tokens SET used_at = now() WHERE id = $1", row["id"]
                )
                return await self._insert(
                    conn, row["family_id"], row["account_id"], row["account_kind"]
                )
        # Outside the transaction block so the family's revocation is committed, not rolled back.
        raise RefreshRefused(problem)

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
